//! Reading a whole stream: every shard, parents before children, records in shard order.

use std::collections::HashSet;
use std::time::Duration;

use runnel_proto::v1 as proto;

use crate::Client;
use crate::Error;
use crate::Position;
use crate::Record;
use crate::ShardNode;
use crate::ShardOrder;
use crate::sequence::shard_index_of_sequence_number;

/// How a [`StreamReader`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Where reading starts. TRIM_HORIZON and AT_TIMESTAMP apply to every shard; LATEST to the
    /// open shards; a sequence number to its shard (named by `shard` or decoded from the number)
    /// and that shard's descendants.
    pub start: Position,
    /// Read only this shard (and not its children).
    pub shard: Option<String>,
    /// Keep polling for new records instead of ending once every shard is caught up.
    pub follow: bool,
    /// Records asked per GetRecords call.
    pub limit_per_call: u32,
    /// Pause between polls when a following reader found nothing new, and before reading a
    /// shard again after its read limits refused a call.
    pub poll_interval: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            start: Position::TrimHorizon,
            shard: None,
            follow: false,
            limit_per_call: 10_000,
            poll_interval: Duration::from_millis(200),
        }
    }
}

#[derive(Debug)]
struct Cursor {
    shard_id: String,
    position: Position,
}

/// Reads every shard of a stream. Shards are read concurrently, a child only once its parents
/// are read to the end; records of one shard come out in sequence order.
#[derive(Debug)]
pub struct StreamReader {
    client: Client,
    stream: String,
    options: ReaderOptions,
    order: ShardOrder,
    /// Shards in the description at open time (they start at `options.start`).
    initial: HashSet<String>,
    /// The shard a sequence-number start applies to.
    sequence_shard: Option<String>,
    single_shard: bool,
    cursors: Vec<Cursor>,
}

impl StreamReader {
    /// Describes the stream and plans the read.
    pub async fn open(client: &Client, stream: &str, options: ReaderOptions) -> Result<Self, Error> {
        let description = client.describe_stream(stream).await?;
        let nodes: Vec<ShardNode> = description.shards.iter().map(node_of).collect();
        let mut order = ShardOrder::new(nodes);
        let initial: HashSet<String> = description.shards.iter().map(|s| s.shard_id.clone()).collect();
        let mut sequence_shard = None;
        let single_shard = options.shard.is_some();
        if let Some(shard) = &options.shard {
            if !order.contains(shard) {
                return Err(Error::ShardNotFound {
                    stream: stream.to_string(),
                    shard: shard.clone(),
                });
            }
            order = ShardOrder::new(
                description
                    .shards
                    .iter()
                    .filter(|s| &s.shard_id == shard)
                    .map(|s| {
                        let mut node = node_of(s);
                        node.parents.clear();
                        node
                    }),
            );
            sequence_shard = Some(shard.clone());
        } else if let Some(seq) = options.start.sequence_number() {
            let index = shard_index_of_sequence_number(seq).ok_or_else(|| Error::InvalidPosition {
                input: options.start.to_string(),
                reason: "cannot tell its shard from the sequence number; name the shard".to_string(),
            })?;
            let shard = format!("shardId-{index:012}");
            if !order.contains(&shard) {
                return Err(Error::ShardNotFound {
                    stream: stream.to_string(),
                    shard,
                });
            }
            order.restrict_to_lineage(&shard);
            sequence_shard = Some(shard);
        } else if options.start == Position::Latest {
            order.skip_closed();
        }
        Ok(StreamReader {
            client: client.clone(),
            stream: stream.to_string(),
            options,
            order,
            initial,
            sequence_shard,
            single_shard,
            cursors: Vec::new(),
        })
    }

    /// The position a newly ready shard starts at.
    fn start_position(&self, shard_id: &str) -> Position {
        let start = &self.options.start;
        if start.sequence_number().is_some() {
            if self.sequence_shard.as_deref() == Some(shard_id) {
                return start.clone();
            }
            return Position::TrimHorizon;
        }
        if self.initial.contains(shard_id) {
            start.clone()
        } else {
            // Discovered after the start: a child of a shard read to its end.
            Position::TrimHorizon
        }
    }

    /// The next records, or `None` when there is nothing more to read (never, when following,
    /// unless every shard is closed and read).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, Error> {
        loop {
            for shard_id in self.order.take_ready() {
                let position = self.start_position(&shard_id);
                self.cursors.push(Cursor { shard_id, position });
            }
            if self.cursors.is_empty() {
                return Ok(None);
            }
            let reads = self.cursors.iter().map(|cursor| {
                self.client.get_records(
                    &self.stream,
                    &cursor.shard_id,
                    cursor.position.clone(),
                    self.options.limit_per_call,
                )
            });
            let pages = futures::future::join_all(reads).await;
            let mut records = Vec::new();
            let mut keep = Vec::with_capacity(self.cursors.len());
            let mut throttled = false;
            for (mut cursor, page) in std::mem::take(&mut self.cursors).into_iter().zip(pages) {
                let page = match page {
                    Ok(page) => page,
                    // Over the shard's read limits: read it again after a pause.
                    Err(Error::Throttled(_)) => {
                        throttled = true;
                        keep.push(cursor);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let caught_up = page.records.is_empty() && page.millis_behind_latest <= 0;
                records.extend(page.records);
                match page.next_position {
                    None => {
                        self.order.finish(&cursor.shard_id);
                        if !self.single_shard {
                            for child in page.child_shards {
                                let parents: Vec<&str> =
                                    child.parent_shards.iter().map(String::as_str).collect();
                                self.order
                                    .add(ShardNode::new(child.shard_id.as_str(), &parents, false));
                            }
                        }
                    }
                    Some(next) => {
                        cursor.position = next;
                        if self.options.follow || !caught_up {
                            keep.push(cursor);
                        }
                    }
                }
            }
            self.cursors = keep;
            if !records.is_empty() {
                return Ok(Some(records));
            }
            if throttled || (self.options.follow && !self.cursors.is_empty()) {
                tokio::time::sleep(self.options.poll_interval).await;
            }
        }
    }
}

fn node_of(shard: &proto::Shard) -> ShardNode {
    ShardNode::new(
        shard.shard_id.as_str(),
        &[
            shard.parent_shard_id.as_str(),
            shard.adjacent_parent_shard_id.as_str(),
        ],
        !shard.ending_sequence_number.is_empty(),
    )
}
