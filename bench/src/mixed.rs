//! The `mixed` mode: producers and polling consumers at once.

use tokio::time::Instant;

use crate::Options;
use crate::e2e;
use crate::e2e::Receivers;
use crate::e2e::Via;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::setup;

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.record_size as usize >= produce::HEADER,
        "mixed needs --record-size of at least 16"
    );
    let target = setup::connect(options).await?;
    let receivers = Receivers::start(&target.client, &options.stream, &target.shards, Via::Poll);
    tokio::time::sleep(e2e::SETTLE).await;
    let started = Instant::now();
    let load = Load::from_options(options, true);
    let produced = produce::produce(&target.client, &load).await;
    let received = receivers.finish(produced.records).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report::new("mixed");
    produce::describe_setup(&mut report, options, target.shards.len());
    produced.add_to(&mut report);
    e2e::add_receive_rows(&mut report, &received, seconds);
    Ok(report)
}
