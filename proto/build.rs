//! Compiles `proto/runnel/v1/*.proto` with protox (a pure-Rust protobuf compiler), so building
//! Runnel needs no `protoc` binary on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/runnel/v1/streams.proto",
        "proto/runnel/v1/admin.proto",
        "proto/runnel/v1/raft.proto",
        "proto/runnel/v1/leases.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".runnel.v1.Record.data")
        .bytes(".runnel.v1.PutRecordsEntry.data")
        .bytes(".runnel.v1.RaftMessage.payload")
        .bytes(".runnel.v1.RaftReply.payload")
        .bytes(".runnel.v1.PipelineMessage.payload")
        .bytes(".runnel.v1.PipelineAck.payload")
        .bytes(".runnel.v1.ProposeShardRequest.batch")
        .bytes(".runnel.v1.LogFrame.payload")
        .compile_fds(fds)?;
    Ok(())
}
