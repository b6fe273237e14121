"""The passages that answer a caller's question: BM25 (rank_bm25) over Hebrew words as
words.py reads them, and nothing when the question's own words are mostly not in any passage."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

from .facts import Facts, LiveFacts, Passage
from .words import content_words

MIN_COVERAGE = 0.5  # the share of the question's word weight a passage must hold
MIN_IDF = 0.05  # a word in most passages still counts a little (BM25Okapi's floor can be < 0)


@dataclass(frozen=True)
class Hit:
    """A passage found for a question: its BM25 `score` and `coverage`, the share of the
    question's words (each weighted by its rarity in the passages) that it holds."""

    passage: Passage
    score: float
    coverage: float


class Retriever:
    """BM25 over passages, each indexed by its title and text as `words.content_words`."""

    def __init__(self, passages: tuple[Passage, ...] | list[Passage],
                 min_coverage: float = MIN_COVERAGE):
        self.passages = tuple(passages)
        self.min_coverage = min_coverage
        self.words = [{f for forms in content_words(f"{p.title} {p.text}") for f in forms}
                      for p in self.passages]
        tokens = [[f for forms in content_words(f"{p.title} {p.text}") for f in forms]
                  for p in self.passages]
        self.bm25 = BM25Okapi(tokens) if any(tokens) else None
        if self.bm25:
            for word, idf in self.bm25.idf.items():
                self.bm25.idf[word] = max(idf, MIN_IDF)
        self.unknown_idf = math.log(2 * len(self.passages) + 1)  # a word in no passage

    def _weight(self, forms: list[str]) -> float:
        """How much a question's word counts: the idf of its commonest form."""
        idf = self.bm25.idf if self.bm25 else {}
        return min(idf.get(f, self.unknown_idf) for f in forms)

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The passages that answer `question`, best first: each holding at least
        `min_coverage` of its words' weight; [] for a question about something else."""
        words = content_words(question)
        if not words or self.bm25 is None:
            return []
        weights = [self._weight(forms) for forms in words]
        scores = self.bm25.get_scores([f for forms in words for f in forms])
        hits = []
        for n, passage in enumerate(self.passages):
            held = sum(w for forms, w in zip(words, weights, strict=True)
                       if any(f in self.words[n] for f in forms))
            coverage = held / sum(weights)
            if coverage >= self.min_coverage and scores[n] > 0:
                hits.append(Hit(passage, float(scores[n]), coverage))
        return sorted(hits, key=lambda h: (-h.score, -h.coverage))[:limit]

    def best(self, question: str) -> Passage | None:
        """The one passage that answers `question` best, or None."""
        hits = self.search(question, limit=1)
        return hits[0].passage if hits else None


class Lookup:
    """`lookup(question)`: the best passage of the facts as the files say now (LiveFacts), the
    index built again when they change."""

    def __init__(self, facts: LiveFacts):
        self.facts = facts
        self.lock = threading.Lock()
        self.built: tuple[Facts | None, Retriever] = (None, Retriever(()))

    def retriever(self) -> Retriever:
        facts = self.facts.current()
        with self.lock:
            if self.built[0] is not facts:
                self.built = (facts, Retriever(facts.passages))
            return self.built[1]

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        return self.retriever().search(question, limit)

    def __call__(self, question: str) -> Passage | None:
        return self.retriever().best(question)
