/*
 * The filter indexes of a database (format 3, store_format.h), built by
 * quotes-import as it writes the quotes in their final order: the words
 * of each quote, its length, its tags, and the folded names of authors.
 */
#ifndef QUOTERD_IMPORT_INDEX_H
#define QUOTERD_IMPORT_INDEX_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

struct index;

/*
 * Two threads may index the quotes at once, each into a part of its
 * own: part 0 takes quotes in ascending order, part 1 in descending
 * order, and every quote of part 1 comes after every quote of part 0
 * (one thread works from the front, the other from the back). A part is
 * touched by one thread at a time; index_add_author() by one thread.
 */
#define INDEX_PARTS 2

struct index *index_new(uint32_t nquotes);
void index_free(struct index *ix);
/* Quote q has the text text[0..len). */
int index_add_quote(struct index *ix, unsigned part, uint32_t q,
    const char *text, size_t len);
/* Quote q carries the tag named name[0..len) (words_tag_valid()). */
int index_add_tag(struct index *ix, unsigned part, uint32_t q, const char *name,
    size_t len);
/* Author a (added in ascending order) is named name[0..len). */
int
index_add_author(struct index *ix, uint32_t a, const char *name, size_t len);
/*
 * Puts the part's terms in key order, once its quotes are all added, so
 * that the thread that indexed it does the sorting too; index_write()
 * sorts whatever is not. Returns 0 or errno.
 */
int index_sort(struct index *ix, unsigned part);
/*
 * Writes the words, tags, folded and lengths databases through txn.
 * Returns 0, an LMDB code, or errno.
 */
int index_write(struct index *ix, MDB_txn *txn, MDB_dbi words, MDB_dbi tags,
    MDB_dbi folded, MDB_dbi lengths);

#endif
