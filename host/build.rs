//! Compiles host/proto into OUT_DIR with a protoc that ships inside a crate, so no system protoc
//! is needed. `PROTOC` still wins when set.
//!
//! Twice: once for the messages, the client and the descriptor set, and once more for the server
//! alone, into `OUT_DIR/encoded`, where `GetEntitiesResponse` is the hand-written
//! `grpc::encoded::EncodedEntities` (written from titles kept encoded) instead of the generated
//! message. Both are the same message on the wire.
use std::path::{Path, PathBuf};

fn protoc_config() -> Result<tonic_prost_build::Config, Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    let protoc: PathBuf = match std::env::var_os("PROTOC") {
        Some(path) => path.into(),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    config.protoc_executable(protoc);
    Ok(config)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let protos = ["proto/tessera/v1/entities.proto"];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out.join("tessera_descriptor.bin"))
        .compile_with_config(protoc_config()?, &protos, &["proto"])?;
    let encoded = out.join("encoded");
    std::fs::create_dir_all(&encoded)?;
    // The exact path wins over the package's: every other message stays the generated one.
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(Path::new(&encoded))
        .extern_path(".tessera.v1", "crate::grpc::proto")
        .extern_path(
            ".tessera.v1.GetEntitiesResponse",
            "crate::grpc::encoded::EncodedEntities",
        )
        .compile_with_config(protoc_config()?, &protos, &["proto"])?;
    Ok(())
}
