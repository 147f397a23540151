//! Where a plugin's declared outputs go in the store: the model an output names (with its
//! modality for a two-tower model), which gives the vector's name.

use super::PluginInfo;
use tessera_indexes::VectorKind;
use tessera_models::Registry;
use tessera_models::manifest::Modality;

/// A plugin's outputs as the store sees them, worked out once when it is loaded.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    /// See [`super::Plugin::output_models`].
    pub(crate) models: Vec<String>,
    /// (output, kind, vector name) for each declared output whose model is loaded.
    names: Vec<(String, VectorKind, String)>,
}

impl Placement {
    pub(crate) fn of(info: &PluginInfo, allowed: &[String], registry: &Registry) -> Self {
        let mut models: Vec<String> = allowed
            .iter()
            .chain(info.embeddings.iter().map(|(_, m)| m))
            .chain(info.token_sequences.iter().map(|(_, m)| m))
            .map(|m| {
                // Every tower of a model shares its identity; an output's `:modality` is not
                // part of it.
                let (name, _) = split_modality(m);
                let served = registry.modalities(name);
                served.first().map_or_else(|| m.clone(), |s| s.2.clone())
            })
            .collect();
        models.sort();
        models.dedup();
        let dense = info.embeddings.iter().map(|o| (o, VectorKind::Dense));
        let multi = info.token_sequences.iter().map(|o| (o, VectorKind::Multi));
        let names = dense
            .chain(multi)
            .filter_map(|((output, model), kind)| {
                let (modality, _, identity) = output_model(registry, model).ok()?;
                let name = tessera_indexes::vector_name(modality.as_str(), &identity, kind);
                Some((output.clone(), kind, name))
            })
            .collect();
        Placement { models, names }
    }

    /// The vector name of output `output` of `kind`, when its model is loaded.
    pub(crate) fn store_name(&self, output: &str, kind: VectorKind) -> Option<String> {
        self.names
            .iter()
            .find(|(o, k, _)| o == output && *k == kind)
            .map(|(_, _, name)| name.clone())
    }
}

/// What a plugin's declared output model `spec` is: `NAME`, or `NAME:text|image|audio` for a
/// model that serves several modalities (CLIP, SigLIP: the store must know whether the output
/// embeds posters or texts). Gives the modality, the dimension and the model's identity, or why
/// the declaration cannot be stored (an unknown model, a modality it lacks, or an unqualified
/// name for a two-tower model: refused rather than guessed).
pub fn output_model(registry: &Registry, spec: &str) -> Result<(Modality, usize, String), String> {
    let (name, qualifier) = split_modality(spec);
    let qualified = qualifier.map(|modality| (name, modality));
    let served = registry.modalities(name);
    let list = |served: &[(Modality, usize, String)]| {
        served
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match (qualified, served.as_slice()) {
        (_, []) => Err(format!("model {name:?} is not loaded")),
        (Some((_, modality)), _) => {
            served
                .iter()
                .find(|s| s.0 == modality)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "model {name:?} serves {}, not {}",
                        list(&served),
                        modality.as_str()
                    )
                })
        }
        (None, [one]) => Ok(one.clone()),
        (None, several) => Err(format!(
            "model {name:?} serves {}: declare the output's model as {}",
            list(several),
            several
                .iter()
                .map(|s| format!("{name}:{}", s.0.as_str()))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// `NAME:text|image|audio` → (`NAME`, the modality); any other spec is a plain model name.
pub(crate) fn split_modality(spec: &str) -> (&str, Option<Modality>) {
    let qualified = spec.rsplit_once(':').and_then(|(name, m)| {
        let modality = match m {
            "text" => Modality::Text,
            "image" => Modality::Image,
            "audio" => Modality::Audio,
            _ => return None,
        };
        Some((name, modality))
    });
    qualified.map_or((spec, None), |(name, m)| (name, Some(m)))
}
