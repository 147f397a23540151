//! Where a plugin's declared outputs go in the store: the model an output names (with its
//! modality for a two-tower model), which gives the vector's name.

use tessera_models::Registry;
use tessera_models::manifest::Modality;

/// What a plugin's declared output model `spec` is: `NAME`, or `NAME:text|image|audio` for a
/// model that serves several modalities (CLIP, SigLIP: the store must know whether the output
/// embeds posters or texts). Gives the modality, the dimension and the model's identity, or why
/// the declaration cannot be stored (an unknown model, a modality it lacks, or an unqualified
/// name for a two-tower model: refused rather than guessed).
pub fn output_model(registry: &Registry, spec: &str) -> Result<(Modality, usize, String), String> {
    let qualified = spec.rsplit_once(':').and_then(|(name, m)| {
        let modality = match m {
            "text" => Modality::Text,
            "image" => Modality::Image,
            "audio" => Modality::Audio,
            _ => return None,
        };
        Some((name, modality))
    });
    let name = qualified.map_or(spec, |(name, _)| name);
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
