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

type Scored = { label: number; score: number };

/**
 * Combines the vector and lexical rankings into one list of at most `k` hits. `similarity` gives the
 * cosine of a chunk the vector list did not return (convex fusion scores every candidate on both
 * scales); without it such a chunk counts as the vector list's last.
 */
export function fuseRankings(
  vector: readonly Scored[],
  lexical: readonly Scored[],
  ranking: ResolvedRanking,
  k: number,
  similarity?: (label: number) => number,
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
  const fused = ranking.fusion === 'rrf' ? reciprocalRankFusion(vector, lexical, ranking) : convexFusion(vector, lexical, ranking, similarity);
  return fused
    .filter((h) => h.score >= scoreThreshold)
    .slice(0, k)
    .map(({ label, score, lexicalScore }) => ({ label, score, lexicalScore }));
}

/**
 * Reciprocal rank fusion: a chunk scores Σ weight / (rrfK + rank) over the lists it is in (rank from
 * 1). Ranks need no calibration between cosine and BM25, but they also drop each list's confidence:
 * a chunk BM25 puts far ahead of the rest weighs no more than one it barely prefers. The score is
 * divided by its largest possible value (first in every list), so it lies in [0, 1]. Ties (common:
 * each list's own first hit) go to the better single rank, then to the lexical list's, because an
 * exact term match is the rarer signal.
 */
function reciprocalRankFusion(vector: readonly Scored[], lexical: readonly Scored[], ranking: ResolvedRanking) {
  const { rrfK, embeddingWeight, textWeight } = ranking;
  const fused = new Map<number, { score: number; bestRank: number; lexicalRank: number; lexicalScore: number | null }>();
  const addList = (list: readonly Scored[], weight: number, isLexical: boolean) => {
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
    .sort((a, b) => b.score - a.score || a.bestRank - b.bestRank || a.lexicalRank - b.lexicalRank);
}

/**
 * Convex combination: (we·v + wt·t) / (we + wt), where v and t are the chunk's cosine and BM25 scores
 * put on [0, 1] over this query's candidates (min-max, or z-scores through the normal CDF). Unlike
 * ranks, normalised scores keep each list's margins: a chunk BM25 scores far above the rest stays
 * ahead unless the vector side disagrees strongly, and where BM25 scores are close the cosine
 * decides. A chunk without a query term has BM25 0 (t at the floor); every candidate has a cosine.
 * Ties go to the higher BM25 score, as the rarer signal.
 */
function convexFusion(vector: readonly Scored[], lexical: readonly Scored[], ranking: ResolvedRanking, similarity?: (label: number) => number) {
  const { embeddingWeight, textWeight, normalization } = ranking;
  const cosines = new Map(vector.map((h) => [h.label, h.score]));
  const bm25 = new Map(lexical.map((h) => [h.label, h.score]));
  const floorCosine = vector.at(-1)?.score ?? 0;
  for (const h of lexical) if (!cosines.has(h.label)) cosines.set(h.label, similarity ? similarity(h.label) : floorCosine);
  // BM25's own zero (no query term) belongs on its scale, so a list of near-equal matches is not stretched to [0, 1].
  const labels = [...cosines.keys()];
  const lexicalValues = labels.map((l) => bm25.get(l) ?? 0);
  const toUnitCosine = normalizer([...cosines.values()], normalization);
  const toUnitBm25 = normalizer(lexicalValues, normalization);
  const total = embeddingWeight + textWeight;
  return labels
    .map((label, i) => {
      const lexicalScore = bm25.get(label) ?? null;
      const score = (embeddingWeight * toUnitCosine(cosines.get(label)!) + textWeight * toUnitBm25(lexicalValues[i]!)) / total;
      return { label, score, lexicalScore };
    })
    .sort((a, b) => b.score - a.score || (b.lexicalScore ?? 0) - (a.lexicalScore ?? 0));
}

/**
 * Maps a list's values onto [0, 1]: min-max, or z-score through the standard normal CDF. A constant
 * list tells candidates nothing apart: all 1 if positive (one candidate, or equal matches), all 0 if
 * not (no chunk has a query term), so a query BM25 cannot match is not scored as a perfect match.
 */
function normalizer(values: readonly number[], kind: ResolvedRanking['normalization']): (x: number) => number {
  if (values.length === 0) return () => 0;
  if (kind === 'min_max') {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return hi > lo ? (x) => (x - lo) / (hi - lo) : () => (hi > 0 ? 1 : 0);
  }
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
  return sd > 0 ? (x) => normalCdf((x - mean) / sd) : () => (mean > 0 ? 1 : 0);
}

/** Φ(z) by Abramowitz & Stegun 7.1.26's erf (error below 1.5e-7): enough for ordering and thresholds. */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
