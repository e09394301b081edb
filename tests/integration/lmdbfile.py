"""Just enough of LMDB's on-disk layout (liblmdb 0.9, 64-bit, little
endian) to find pages and nodes in a quoterd database and damage them on
purpose: the crafted files of test_hostile_db.py.

A file is pages of `psize` bytes. Pages 0 and 1 are meta pages; the one
with the larger transaction id is current, and its second MDB_db record
roots the main database, whose leaves hold the named databases' MDB_db
records (F_SUBDATA nodes). Branch and leaf pages hold a 16-byte header,
then 2-byte node offsets growing up from the header (to mp_lower) and
nodes growing down from the end (from mp_upper).
"""

import struct

PAGEHDRSZ = 16
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02
NODESIZE = 8
META_MAGIC = 0xBEEFC0DE
# Offsets inside a meta page.
MM_DBS = PAGEHDRSZ + 24          # mm_dbs[0] (free pages), then [1] (main)
MDB_DB_SIZE = 48
MD_ROOT = 40                     # inside an MDB_db record
MM_LAST_PG = MM_DBS + 2 * MDB_DB_SIZE
MM_TXNID = MM_LAST_PG + 8


class Node:
    def __init__(self, page, index, offset, data):
        self.page, self.index, self.offset = page, index, offset
        lo, hi, self.flags, self.ksize = struct.unpack_from("<HHHH", data, offset)
        self.dsize = lo | hi << 16          # leaf: size of the value
        self.child = lo | hi << 16 | self.flags << 32   # branch: page
        self.key = bytes(data[offset + NODESIZE:offset + NODESIZE + self.ksize])
        self.value_offset = offset + NODESIZE + self.ksize


class Page:
    def __init__(self, db, pgno):
        self.db, self.pgno = db, pgno
        self.base = pgno * db.psize
        d = db.data
        (self.mp_pgno, _pad, self.flags, self.lower,
         self.upper) = struct.unpack_from("<QHHHH", d, self.base)

    def nodes(self):
        out = []
        for i in range((self.lower - PAGEHDRSZ) // 2):
            ptr = struct.unpack_from("<H", self.db.data,
                                     self.base + PAGEHDRSZ + 2 * i)[0]
            out.append(Node(self, i, self.base + ptr, self.db.data))
        return out

    def ptr_offset(self, i):
        """File offset of node i's 2-byte offset."""
        return self.base + PAGEHDRSZ + 2 * i


class LmdbFile:
    def __init__(self, data):
        self.data = bytearray(data)
        self.psize = struct.unpack_from("<I", self.data, MM_DBS)[0]
        assert struct.unpack_from("<I", self.data, PAGEHDRSZ)[0] == META_MAGIC
        txn = [struct.unpack_from("<Q", self.data, i * self.psize + MM_TXNID)[0]
               for i in (0, 1)]
        self.meta = 1 if txn[1] > txn[0] else 0

    def meta_offset(self, field):
        return self.meta * self.psize + field

    def main_root(self):
        return struct.unpack_from(
            "<Q", self.data, self.meta_offset(MM_DBS + MDB_DB_SIZE + MD_ROOT))[0]

    def leaves(self, root):
        """Leaf pages of the tree at root, in key order."""
        page = Page(self, root)
        if page.flags & P_LEAF:
            return [page]
        assert page.flags & P_BRANCH, f"page {root}: flags {page.flags:#x}"
        return [leaf for n in page.nodes() for leaf in self.leaves(n.child)]

    def named_root(self, name):
        """Root page of named database name (bytes)."""
        for leaf in self.leaves(self.main_root()):
            for n in leaf.nodes():
                if n.key == name and n.flags & F_SUBDATA:
                    return struct.unpack_from("<Q", self.data,
                                              n.value_offset + MD_ROOT)[0]
        raise KeyError(name)

    def records(self, name):
        """Leaf nodes of named database name, in key order."""
        return [n for leaf in self.leaves(self.named_root(name))
                for n in leaf.nodes()]

    def set_dsize(self, node, size):
        struct.pack_into("<HH", self.data, node.offset, size & 0xFFFF,
                         size >> 16 & 0xFFFF)

    def set_ptr(self, page, i, value):
        struct.pack_into("<H", self.data, page.ptr_offset(i), value)

    def used_pages(self):
        return struct.unpack_from(
            "<Q", self.data, self.meta_offset(MM_LAST_PG))[0] + 1
