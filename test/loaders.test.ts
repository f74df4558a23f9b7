import { describe, expect, it } from 'vitest';
import { fuzzLoaders } from '../fuzz/loaders.js';

describe('loaders under fuzzing', () => {
  it('every mutated graph JSON or checkpoint loads cleanly or is refused with a SymflowError (seeded, 1,000 cases)', () => {
    const r = fuzzLoaders(1000, 7);
    expect(r.failures).toEqual([]);
    expect(r.cases).toBe(1000);
    // Both outcomes really happen: the mutations reach the parsers, not just the checksum.
    expect(r.refused).toBeGreaterThan(500);
    expect(r.clean).toBeGreaterThan(10);
    expect(r.slowestMs).toBeLessThan(2000);
  });
});
