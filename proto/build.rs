//! Compiles the versioned proto packages into Rust with tonic-prost-build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "weir/admin/v1/admin.proto",
        "weir/control/v1/control.proto",
        "weir/connector/v2/connector.proto",
    ];
    tonic_prost_build::configure()
        .bytes(".weir.connector.v2")
        .compile_protos(&protos, &["."])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
