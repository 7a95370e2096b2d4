//! A small seeded mutator for the fuzz targets: from valid samples it makes inputs by bit flips, byte changes,
//! insertions (random bytes and the target's dictionary tokens), deletions, duplications, truncations and splices
//! of two samples; now and then a wholly random input. The same seed gives the same inputs, so a failure is
//! replayed with `FUZZ_SEED`.

/// Inputs grow no larger than this: the targets' size limits are not what is being searched.
const MAX_LEN: usize = 64 * 1024;

/// Inputs derived from a target's samples and dictionary.
pub(crate) struct Mutator {
    state: u64,
    samples: Vec<Vec<u8>>,
    dictionary: &'static [&'static str],
}

impl Mutator {
    /// A mutator over `samples` (at least one) inserting `dictionary` tokens, seeded with `seed`.
    pub(crate) fn new(seed: u64, samples: Vec<Vec<u8>>, dictionary: &'static [&'static str]) -> Mutator {
        assert!(!samples.is_empty(), "a mutator needs a sample");
        // xorshift's state must not be 0.
        Mutator { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, samples, dictionary }
    }

    /// The next pseudo-random number (xorshift64*).
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of the samples, at random.
    fn sample(&mut self) -> Vec<u8> {
        let index = self.below(self.samples.len());
        self.samples[index].clone()
    }

    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// The next input: usually a sample with 1 to 8 mutations, sometimes random bytes or a sample as it is.
    pub(crate) fn input(&mut self) -> Vec<u8> {
        match self.below(32) {
            0 => {
                let len = self.below(256);
                self.random_bytes(len)
            }
            1 => self.sample(),
            _ => {
                let mut data = self.sample();
                for _ in 0..=self.below(8) {
                    self.mutate(&mut data);
                }
                data.truncate(MAX_LEN);
                data
            }
        }
    }

    /// One mutation of `data`.
    fn mutate(&mut self, data: &mut Vec<u8>) {
        let len = data.len();
        match self.below(10) {
            0 if len > 0 => {
                let at = self.below(len);
                data[at] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let at = self.below(len);
                data[at] = self.next() as u8;
            }
            2 => {
                let at = self.below(len + 1);
                let count = 1 + self.below(8);
                let bytes = self.random_bytes(count);
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let start = self.below(len);
                let end = (start + 1 + self.below(16)).min(len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = self.below(len);
                let end = (start + 1 + self.below(64)).min(len);
                let copy = data[start..end].to_vec();
                let at = self.below(len + 1);
                data.splice(at..at, copy);
            }
            5 if len > 0 => {
                let at = self.below(len);
                data.truncate(at);
            }
            6 => {
                let other = self.sample();
                let cut = self.below(len + 1);
                let from = self.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 if len > 1 => {
                let (a, b) = (self.below(len), self.below(len));
                data.swap(a, b);
            }
            _ if !self.dictionary.is_empty() => {
                let token = self.dictionary[self.below(self.dictionary.len())].as_bytes().to_vec();
                let at = self.below(len + 1);
                if self.below(2) == 0 || len == 0 {
                    data.splice(at..at, token);
                } else {
                    let end = (at + token.len()).min(len);
                    data.splice(at..end, token);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs_and_they_vary() {
        let samples = vec![b"{\"a\": 1}".to_vec(), b"b: [1, 2]".to_vec()];
        let mut one = Mutator::new(7, samples.clone(), &["null"]);
        let mut two = Mutator::new(7, samples.clone(), &["null"]);
        let first: Vec<Vec<u8>> = (0..200).map(|_| one.input()).collect();
        assert_eq!(first, (0..200).map(|_| two.input()).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<&Vec<u8>> = first.iter().collect();
        assert!(distinct.len() > 150, "only {} distinct inputs of 200", distinct.len());
        assert!(first.iter().any(|i| !samples.contains(i)), "every input was a sample unchanged");
        assert!(first.iter().all(|i| i.len() <= MAX_LEN));
    }
}
