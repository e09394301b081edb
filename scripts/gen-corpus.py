#!/usr/bin/python3
"""Writes a synthetic quotes.txt for benchmarks and size tests.

usage: gen-corpus.py N [AUTHORS] > quotes.txt

N quotes of about 120 bytes each, spread over AUTHORS authors (default
N/20) with uneven counts, deterministic for a given N and AUTHORS.
"""
import random
import sys

WORDS = ('time life love truth world man mind heart power nothing '
         'always never every great small wise fool light dark hope fear '
         'friend enemy word work money death art nature reason virtue').split()


def main():
    n = int(sys.argv[1])
    authors = int(sys.argv[2]) if len(sys.argv) > 2 else max(1, n // 20)
    rnd = random.Random(n * 7919 + authors)
    out = sys.stdout
    names = [f'Author {i:07d} {rnd.choice(WORDS).title()}' for i in range(authors)]
    for i in range(n):
        # Skewed: low-numbered authors get more quotes.
        a = names[min(int(rnd.paretovariate(1.2)) - 1, authors - 1) if i >= authors else i]
        words = ' '.join(rnd.choice(WORDS) for _ in range(17))
        out.write(f'Quote {i}: {words.capitalize()}.~{a}\n')


if __name__ == '__main__':
    main()
