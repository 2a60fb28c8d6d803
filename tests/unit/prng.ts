// The tests' one seeded generator: xorshift128+ over 64-bit BigInts, so a
// fixed seed gives the same cases on every run and machine.
const ALL1 = (1n << 64n) - 1n;

export function prng(seed: bigint) {
  let s0 = seed ^ 0x9e3779b97f4a7c15n, s1 = (seed * 0xbf58476d1ce4e5b9n) & ALL1;
  const next = (): bigint => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = (x ^ (x << 23n)) & ALL1;
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (s1 + y) & ALL1;
  };
  const int = (n: number): number => Number(next() % BigInt(n));
  return { next, int, pick: <T>(a: readonly T[]): T => a[int(a.length)] };
}
export type Rng = ReturnType<typeof prng>;
