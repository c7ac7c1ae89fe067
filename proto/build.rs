//! Generates the tonic/prost code of `proto/*.proto` when the `grpc` feature
//! is on. The .proto files are parsed by protox (pure Rust), so no `protoc`
//! is needed on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    if std::env::var_os("CARGO_FEATURE_GRPC").is_none() {
        return Ok(());
    }
    let fds = protox::compile(["gold.proto", "config.proto", "gateway.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
