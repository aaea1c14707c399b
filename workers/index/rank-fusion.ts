import type { ResolvedRanking } from '../../shared/documents/search-ranking.js';

export interface RankedHit {
  label: number;
  /** In [0, 1]; see rankingOptionsSchema's score_threshold for what it means per mode. */
  score: number;
  /** Cosine similarity to the query, when the query was embedded. */
  vectorScore: number | null;
  /** Raw BM25 score, when the chunk matched the query's terms. */
  lexicalScore: number | null;
}

/**
 * Combines the vector and lexical rankings into one list of at most `k` hits.
 *
 * Hybrid uses reciprocal rank fusion: a chunk scores Σ weight / (rrfK + rank) over the lists it is
 * in (rank from 1). Ranks rather than scores are fused because cosine similarities and BM25 scores
 * live on unrelated scales that shift with every query and collection; RRF needs no calibration.
 * The fused score is divided by its largest possible value (first in every list), so it lies in
 * [0, 1] like the other modes' scores and a score threshold means the same across queries. Ties
 * (common: each list's own first hit) go to the chunk with the better single rank, then to the
 * lexical list's, because an exact term match is the rarer signal.
 */
export function fuseRankings(
  vector: readonly { label: number; score: number }[],
  lexical: readonly { label: number; score: number }[],
  ranking: ResolvedRanking,
  k: number,
): Omit<RankedHit, 'vectorScore'>[] {
  const { mode, scoreThreshold } = ranking;
  if (mode === 'vector') {
    const lexicalScores = new Map(lexical.map((h) => [h.label, h.score]));
    return vector
      .filter((h) => h.score >= scoreThreshold)
      .slice(0, k)
      .map((h) => ({ label: h.label, score: h.score, lexicalScore: lexicalScores.get(h.label) ?? null }));
  }
  if (mode === 'lexical') {
    const top = lexical[0]?.score ?? 0;
    return lexical
      .map((h) => ({ label: h.label, score: top > 0 ? h.score / top : 0, lexicalScore: h.score }))
      .filter((h) => h.score >= scoreThreshold)
      .slice(0, k);
  }
  const { rrfK, embeddingWeight, textWeight } = ranking;
  const fused = new Map<number, { score: number; bestRank: number; lexicalRank: number; lexicalScore: number | null }>();
  const addList = (list: readonly { label: number; score: number }[], weight: number, isLexical: boolean) => {
    if (weight === 0) return;
    list.forEach((h, i) => {
      const rank = i + 1;
      const entry = fused.get(h.label) ?? { score: 0, bestRank: Infinity, lexicalRank: Infinity, lexicalScore: null };
      entry.score += weight / (rrfK + rank);
      entry.bestRank = Math.min(entry.bestRank, rank);
      if (isLexical) {
        entry.lexicalRank = rank;
        entry.lexicalScore = h.score;
      }
      fused.set(h.label, entry);
    });
  };
  addList(vector, embeddingWeight, false);
  addList(lexical, textWeight, true);
  const best = (embeddingWeight + textWeight) / (rrfK + 1);
  return [...fused]
    .map(([label, e]) => ({ label, score: e.score / best, bestRank: e.bestRank, lexicalRank: e.lexicalRank, lexicalScore: e.lexicalScore }))
    .sort((a, b) => b.score - a.score || a.bestRank - b.bestRank || a.lexicalRank - b.lexicalRank)
    .filter((h) => h.score >= scoreThreshold)
    .slice(0, k)
    .map(({ label, score, lexicalScore }) => ({ label, score, lexicalScore }));
}
