//! A deterministic stand-in text model for plugin authors' tests (`tessera plugin test
//! --mock-models`): the vector is a pure function of the text (FNV-1a seeds SplitMix64), unit
//! length, the same on every machine and run, and computed in microseconds. It carries no meaning.

use tessera_models::{ModelError, TextEmbedder};

/// The mock's dimension.
pub const MOCK_DIMENSION: usize = 16;

/// A text "model" whose vectors depend only on the text.
#[derive(Debug, Clone)]
pub struct MockText {
    name: String,
}

impl MockText {
    /// A mock registered as `name`.
    pub fn new(name: &str) -> Self {
        MockText {
            name: name.to_string(),
        }
    }
}

/// The mock vector of `text`.
pub fn mock_vector(text: &str) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..MOCK_DIMENSION)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

impl TextEmbedder for MockText {
    fn name(&self) -> &str {
        &self.name
    }
    fn dimension(&self) -> usize {
        MOCK_DIMENSION
    }
    fn max_batch(&self) -> usize {
        1024
    }
    fn is_placeholder(&self) -> bool {
        true
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        Ok(texts.iter().map(|t| mock_vector(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_vector_unit_length() {
        let a = mock_vector("a lighthouse keeper");
        assert_eq!(a, mock_vector("a lighthouse keeper"));
        assert_ne!(a, mock_vector("a lighthouse keeper."));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
