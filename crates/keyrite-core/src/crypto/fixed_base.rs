//! Fixed-base scalar multiplication: `k·P` for a point `P` known in advance (the
//! generator, a signer's public key), from a table of its multiples made once.
//!
//! The table holds `j·256^w·P` for the 32 byte positions `w` and `j` in 1..=128, as affine
//! points (k256's batch normalisation), plus `2^256·P`. A scalar, written in signed base-256
//! digits in -128..=127, is then at most 33 mixed additions and no doublings, against
//! the 128 doublings and 132 constant-time lookups and additions of k256's
//! `lincomb`: 23 µs for `u1·G + u2·Q` against 108 µs (BENCHMARKS.md). The curve arithmetic
//! is k256's; only the table and the digit walk are here.
//!
//! **Variable time.** Which entries are read, and how many additions are made, depend on
//! the scalar. Use it only for public scalars, as signature checking has (`z/s`, `r/s`
//! from a digest and a signature), never for a secret.

use std::sync::OnceLock;

use k256::elliptic_curve::BatchNormalize;
use k256::{AffinePoint, ProjectivePoint, Scalar};

const WINDOWS: usize = 32;
const ENTRIES: usize = 128;

/// The multiples of one point; ~360 KB, built in ~4 ms.
pub struct FixedBase {
    /// `table[w * ENTRIES + j - 1] = j·256^w·P`, then `2^256·P` last.
    table: Vec<AffinePoint>,
}

impl std::fmt::Debug for FixedBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBase").field("points", &self.table.len()).finish()
    }
}

impl FixedBase {
    pub fn new(point: &ProjectivePoint) -> FixedBase {
        let mut points = Vec::with_capacity(WINDOWS * ENTRIES + 1);
        let mut base = *point;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..ENTRIES {
                points.push(multiple);
                multiple += base;
            }
            for _ in 0..8 {
                base = base.double();
            }
        }
        points.push(base);
        FixedBase { table: ProjectivePoint::batch_normalize(points.as_slice()) }
    }

    /// The generator's table, made on first use.
    pub fn generator() -> &'static FixedBase {
        static TABLE: OnceLock<FixedBase> = OnceLock::new();
        TABLE.get_or_init(|| FixedBase::new(&ProjectivePoint::GENERATOR))
    }

    /// `k·P`, in variable time (public `k` only).
    pub fn mul_vartime(&self, k: &Scalar) -> ProjectivePoint {
        let bytes = k.to_bytes();
        let mut acc = ProjectivePoint::IDENTITY;
        let mut carry = 0i16;
        for w in 0..WINDOWS {
            let mut digit = i16::from(bytes[31 - w]) + carry;
            carry = 0;
            if digit >= 128 {
                digit -= 256;
                carry = 1;
            }
            let entry = w * ENTRIES + usize::from(digit.unsigned_abs()).saturating_sub(1);
            match digit {
                0 => {}
                d if d > 0 => acc += &self.table[entry],
                _ => acc += &-self.table[entry],
            }
        }
        if carry == 1 {
            acc += &self.table[WINDOWS * ENTRIES];
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::ops::Reduce;
    use k256::{FieldBytes, U256};

    fn scalar(bytes: [u8; 32]) -> Scalar {
        <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(bytes))
    }

    #[test]
    fn agrees_with_k256_multiplication_on_edge_and_random_scalars() {
        let q = ProjectivePoint::GENERATOR * Scalar::from(0x5eed_u64).invert().unwrap();
        let tables = [(FixedBase::generator(), ProjectivePoint::GENERATOR), (&FixedBase::new(&q), q)];
        let mut scalars: Vec<Scalar> = vec![
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(127u64),
            Scalar::from(128u64),
            Scalar::from(255u64),
            Scalar::from(256u64),
            // Every byte 0x80: a carry through all 32 digits; 0xff: n - 1 and its neighbours.
            scalar([0x80; 32]),
            scalar([0x7f; 32]),
            scalar([0xff; 32]),
        ];
        scalars.extend((0u32..300).map(|i| scalar(crate::crypto::keccak256(&i.to_be_bytes()))));
        for (table, point) in tables {
            for k in &scalars {
                assert_eq!(table.mul_vartime(k), point * k, "k = {k:?}");
            }
        }
    }
}
