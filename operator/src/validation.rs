//! Spec validation, mirroring the limits the Kinesis API enforces. The schemas carry no CEL
//! (Kubernetes 1.20 rejects it), so the operator calls these and reports the messages as a
//! `Degraded` condition and Events.

use std::collections::BTreeSet;

use crate::crd::Autoscaling;
use crate::crd::DeliveryStream;
use crate::crd::EncryptionType;
use crate::crd::Stream;
use crate::crd::StreamMode;
use crate::crd::StreamSpec;

/// Shortest retention AWS allows, in hours.
pub const MIN_RETENTION_HOURS: i32 = 24;
/// Longest retention AWS allows, in hours (365 days).
pub const MAX_RETENTION_HOURS: i32 = 8760;
/// Smallest configurable maximum record size, in KiB (the AWS default of 1 MiB).
pub const MIN_MAX_RECORD_SIZE_KIB: i32 = 1024;
/// Largest configurable maximum record size, in KiB (10 MiB).
pub const MAX_MAX_RECORD_SIZE_KIB: i32 = 10240;
/// Most tags on one stream: AWS allows 50, one of which the operator uses for
/// `runnel.dev/owner`.
pub const MAX_TAGS: usize = 49;
/// Tag keys with this prefix are the operator's.
pub const RESERVED_TAG_PREFIX: &str = "runnel.dev/";
/// Most enhanced fan-out consumers on one stream.
pub const MAX_CONSUMERS: usize = 20;

/// Checks a stream spec. Returns every problem found, each a sentence naming the field.
pub fn validate(spec: &StreamSpec) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if let Some(name) = &spec.name {
        check_name("spec.name", name, &mut errors);
    }
    check_capacity(spec, &mut errors);
    if let Some(hours) = spec.retention_period_hours
        && !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours)
    {
        errors.push(format!(
            "spec.retentionPeriodHours must be between {MIN_RETENTION_HOURS} and {MAX_RETENTION_HOURS}, got {hours}"
        ));
    }
    if let Some(kib) = spec.max_record_size_kib
        && !(MIN_MAX_RECORD_SIZE_KIB..=MAX_MAX_RECORD_SIZE_KIB).contains(&kib)
    {
        errors.push(format!(
            "spec.maxRecordSizeKiB must be between {MIN_MAX_RECORD_SIZE_KIB} and {MAX_MAX_RECORD_SIZE_KIB}, got {kib}"
        ));
    }
    check_encryption(spec, &mut errors);
    check_tags(spec, &mut errors);
    check_consumers(spec, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Checks a whole resource: the spec, and the effective name when `spec.name` is unset
/// (`metadata.name` may be up to 253 characters, more than a stream name allows).
pub fn validate_stream(stream: &Stream) -> Result<(), Vec<String>> {
    let mut errors = validate(&stream.spec).err().unwrap_or_default();
    if stream.spec.name.is_none() {
        match stream.metadata.name.as_deref() {
            Some(name) => check_name("metadata.name (used as the stream name)", name, &mut errors),
            None => errors.push("the stream has no name: set metadata.name or spec.name".to_string()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// True when `name` is a valid Kinesis stream or consumer name.
pub fn is_valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_name(field: &str, name: &str, errors: &mut Vec<String>) {
    if !is_valid_name(name) {
        errors.push(format!(
            "{field} {name:?} is not a valid stream name: use 1 to 128 characters from [a-zA-Z0-9_.-]"
        ));
    }
}

fn check_capacity(spec: &StreamSpec, errors: &mut Vec<String>) {
    match (spec.mode(), spec.shard_count) {
        (StreamMode::Provisioned, None) => {
            errors.push("spec.shardCount is required in PROVISIONED mode".to_string())
        }
        (StreamMode::Provisioned, Some(n)) if n < 1 => {
            errors.push(format!("spec.shardCount must be at least 1, got {n}"))
        }
        (StreamMode::OnDemand, Some(_)) => errors.push(
            "spec.shardCount must not be set in ON_DEMAND mode: the operator sizes the stream \
             (bound it with spec.autoscaling.minShards and maxShards)"
                .to_string(),
        ),
        _ => {}
    }
    if let Some(autoscaling) = &spec.autoscaling {
        check_autoscaling(spec, autoscaling, errors);
    }
}

/// Longest autoscaling observation window: one day.
pub const MAX_WINDOW_SECONDS: i32 = 86_400;

fn check_autoscaling(spec: &StreamSpec, a: &Autoscaling, errors: &mut Vec<String>) {
    if let Some(min) = a.min_shards
        && min < 1
    {
        errors.push(format!(
            "spec.autoscaling.minShards must be at least 1, got {min}"
        ));
    }
    if let Some(max) = a.max_shards
        && max < 1
    {
        errors.push(format!(
            "spec.autoscaling.maxShards must be at least 1, got {max}"
        ));
    }
    if let (Some(min), Some(max)) = (a.min_shards, a.max_shards)
        && min > max
    {
        errors.push(format!(
            "spec.autoscaling.minShards ({min}) must not be greater than maxShards ({max})"
        ));
    }
    if let Some(target) = a.target_utilization_percent
        && !(1..=100).contains(&target)
    {
        errors.push(format!(
            "spec.autoscaling.targetUtilizationPercent must be between 1 and 100, got {target}"
        ));
    }
    for (field, value) in [
        ("scaleUpCooldownSeconds", a.scale_up_cooldown_seconds),
        ("scaleDownCooldownSeconds", a.scale_down_cooldown_seconds),
    ] {
        if let Some(v) = value
            && v < 0
        {
            errors.push(format!("spec.autoscaling.{field} must not be negative, got {v}"));
        }
    }
    for (field, value) in [
        ("scaleUpWindowSeconds", a.scale_up_window_seconds),
        ("scaleDownWindowSeconds", a.scale_down_window_seconds),
    ] {
        if let Some(v) = value
            && !(1..=MAX_WINDOW_SECONDS).contains(&v)
        {
            errors.push(format!(
                "spec.autoscaling.{field} must be between 1 and {MAX_WINDOW_SECONDS}, got {v}"
            ));
        }
    }
    let enabled = a.enabled.unwrap_or(spec.mode() == StreamMode::OnDemand);
    if enabled && let Some(count) = spec.shard_count {
        if let Some(min) = a.min_shards
            && count < min
        {
            errors.push(format!(
                "spec.shardCount ({count}) is below spec.autoscaling.minShards ({min})"
            ));
        }
        if let Some(max) = a.max_shards
            && count > max
        {
            errors.push(format!(
                "spec.shardCount ({count}) is above spec.autoscaling.maxShards ({max})"
            ));
        }
    }
}

fn check_encryption(spec: &StreamSpec, errors: &mut Vec<String>) {
    let Some(enc) = &spec.encryption else { return };
    match (enc.type_, enc.key_id.as_deref()) {
        (EncryptionType::Kms, None) => {
            errors.push("spec.encryption.keyId is required when spec.encryption.type is KMS".to_string())
        }
        (EncryptionType::Kms, Some(key)) if key.is_empty() || key.len() > 2048 => {
            errors.push("spec.encryption.keyId must be 1 to 2048 characters".to_string())
        }
        (EncryptionType::None, Some(_)) => {
            errors.push("spec.encryption.keyId must not be set when spec.encryption.type is NONE".to_string())
        }
        _ => {}
    }
}

fn check_tags(spec: &StreamSpec, errors: &mut Vec<String>) {
    if spec.tags.len() > MAX_TAGS {
        errors.push(format!(
            "spec.tags has {} tags; at most {MAX_TAGS} are allowed (the operator adds runnel.dev/owner)",
            spec.tags.len()
        ));
    }
    for (key, value) in &spec.tags {
        let key_len = key.chars().count();
        if !(1..=128).contains(&key_len) {
            errors.push(format!("spec.tags key {key:?} must be 1 to 128 characters"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            errors.push(format!(
                "spec.tags key {key:?} must not start with \"aws:\" (reserved)"
            ));
        }
        if key.starts_with(RESERVED_TAG_PREFIX) {
            errors.push(format!(
                "spec.tags key {key:?} must not start with \"{RESERVED_TAG_PREFIX}\" (reserved for the operator)"
            ));
        }
        if value.chars().count() > 256 {
            errors.push(format!(
                "spec.tags value for {key:?} must be at most 256 characters"
            ));
        }
    }
}

fn check_consumers(spec: &StreamSpec, errors: &mut Vec<String>) {
    if spec.consumers.len() > MAX_CONSUMERS {
        errors.push(format!(
            "spec.consumers lists {} consumers; at most {MAX_CONSUMERS} are allowed per stream",
            spec.consumers.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for name in &spec.consumers {
        if !is_valid_name(name) {
            errors.push(format!(
                "spec.consumers entry {name:?} is not a valid consumer name: use 1 to 128 characters from [a-zA-Z0-9_.-]"
            ));
        }
        if !seen.insert(name.as_str()) {
            errors.push(format!("spec.consumers lists {name:?} more than once"));
        }
    }
}

/// A delivery stream name as Firehose accepts it: 1-64 of `[a-zA-Z0-9_.-]`.
pub fn is_valid_delivery_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && is_valid_name(name)
}

/// Checks a `DeliveryStream`: its name (1-64 of `[a-zA-Z0-9_.-]`, as Firehose), the source
/// stream name, and that exactly one destination with a bucket is set.
pub fn validate_delivery_stream(ds: &DeliveryStream) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    match ds.delivery_stream_name() {
        Some(name) if is_valid_delivery_stream_name(name) => {}
        Some(name) => errors.push(format!(
            "delivery stream name {name:?} is not valid: use 1 to 64 characters from [a-zA-Z0-9_.-]"
        )),
        None => errors.push("the delivery stream has no name".to_string()),
    }
    if !is_valid_name(&ds.spec.source.stream_name) {
        errors.push(format!(
            "spec.source.streamName {:?} is not a valid stream name",
            ds.spec.source.stream_name
        ));
    }
    match &ds.spec.destination.s3 {
        None => errors.push("spec.destination.s3 is required".to_string()),
        Some(s3) if s3.bucket.is_empty() => {
            errors.push("spec.destination.s3.bucket must not be empty".to_string())
        }
        Some(_) => {}
    }
    if let Some(b) = &ds.spec.buffering {
        if let Some(size) = b.size_mib
            && !(1..=128).contains(&size)
        {
            errors.push(format!(
                "spec.buffering.sizeMiB must be between 1 and 128, got {size}"
            ));
        }
        if let Some(secs) = b.interval_seconds
            && !(0..=900).contains(&secs)
        {
            errors.push(format!(
                "spec.buffering.intervalSeconds must be between 0 and 900, got {secs}"
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Encryption;
    use crate::crd::StreamModeDetails;

    fn provisioned(shards: i32) -> StreamSpec {
        StreamSpec {
            shard_count: Some(shards),
            ..Default::default()
        }
    }

    fn on_demand() -> StreamSpec {
        StreamSpec {
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: StreamMode::OnDemand,
            }),
            ..Default::default()
        }
    }

    fn errors(spec: &StreamSpec) -> Vec<String> {
        validate(spec).err().unwrap_or_default()
    }

    fn has(errors: &[String], needle: &str) -> bool {
        errors.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn minimal_specs_are_valid() {
        assert_eq!(validate(&provisioned(1)), Ok(()));
        assert_eq!(validate(&on_demand()), Ok(()));
    }

    #[test]
    fn names_follow_aws_rules() {
        assert!(is_valid_name("orders_v2.eu-west-1"));
        assert!(is_valid_name(&"a".repeat(128)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(129)));
        assert!(!is_valid_name("has space"));
        assert!(!is_valid_name("slash/y"));
        assert!(!is_valid_name("é"));
        let spec = StreamSpec {
            name: Some("bad name".into()),
            ..provisioned(1)
        };
        assert!(has(
            &errors(&spec),
            "spec.name \"bad name\" is not a valid stream name"
        ));
    }

    #[test]
    fn long_metadata_name_is_rejected_when_used_as_stream_name() {
        let mut stream = Stream::new(&"a".repeat(200), provisioned(1));
        assert!(has(
            &validate_stream(&stream).err().unwrap_or_default(),
            "metadata.name"
        ));
        stream.spec.name = Some("short".into());
        assert_eq!(validate_stream(&stream), Ok(()));
    }

    #[test]
    fn shard_count_depends_on_mode() {
        let missing = StreamSpec::default();
        assert!(has(
            &errors(&missing),
            "spec.shardCount is required in PROVISIONED mode"
        ));
        assert!(has(
            &errors(&provisioned(0)),
            "spec.shardCount must be at least 1, got 0"
        ));
        let on_demand_with_count = StreamSpec {
            shard_count: Some(4),
            ..on_demand()
        };
        assert!(has(
            &errors(&on_demand_with_count),
            "must not be set in ON_DEMAND mode"
        ));
    }

    #[test]
    fn retention_bounds() {
        for (hours, ok) in [(23, false), (24, true), (8760, true), (8761, false)] {
            let spec = StreamSpec {
                retention_period_hours: Some(hours),
                ..provisioned(1)
            };
            assert_eq!(validate(&spec).is_ok(), ok, "retention {hours}");
        }
        let spec = StreamSpec {
            retention_period_hours: Some(1),
            ..provisioned(1)
        };
        assert!(has(
            &errors(&spec),
            "spec.retentionPeriodHours must be between 24 and 8760, got 1"
        ));
    }

    #[test]
    fn record_size_bounds() {
        for (kib, ok) in [(1023, false), (1024, true), (10240, true), (10241, false)] {
            let spec = StreamSpec {
                max_record_size_kib: Some(kib),
                ..provisioned(1)
            };
            assert_eq!(validate(&spec).is_ok(), ok, "max record size {kib}");
        }
    }

    #[test]
    fn autoscaling_bounds() {
        let spec = StreamSpec {
            autoscaling: Some(Autoscaling {
                min_shards: Some(5),
                max_shards: Some(2),
                target_utilization_percent: Some(0),
                scale_up_cooldown_seconds: Some(-1),
                scale_up_window_seconds: Some(0),
                scale_down_window_seconds: Some(86_401),
                ..Default::default()
            }),
            ..on_demand()
        };
        let errs = errors(&spec);
        assert!(has(
            &errs,
            "scaleUpWindowSeconds must be between 1 and 86400, got 0"
        ));
        assert!(has(
            &errs,
            "scaleDownWindowSeconds must be between 1 and 86400, got 86401"
        ));
        assert!(has(&errs, "minShards (5) must not be greater than maxShards (2)"));
        assert!(has(
            &errs,
            "targetUtilizationPercent must be between 1 and 100, got 0"
        ));
        assert!(has(&errs, "scaleUpCooldownSeconds must not be negative"));
    }

    #[test]
    fn provisioned_shard_count_must_sit_within_enabled_autoscaling_bounds() {
        let bounds = Autoscaling {
            enabled: Some(true),
            min_shards: Some(2),
            max_shards: Some(8),
            ..Default::default()
        };
        let spec = StreamSpec {
            autoscaling: Some(bounds.clone()),
            ..provisioned(10)
        };
        assert!(has(
            &errors(&spec),
            "spec.shardCount (10) is above spec.autoscaling.maxShards (8)"
        ));
        let disabled = Autoscaling {
            enabled: Some(false),
            ..bounds
        };
        assert_eq!(
            validate(&StreamSpec {
                autoscaling: Some(disabled),
                ..provisioned(10)
            }),
            Ok(())
        );
    }

    #[test]
    fn encryption_key_rules() {
        let kms = |key: Option<&str>| StreamSpec {
            encryption: Some(Encryption {
                type_: EncryptionType::Kms,
                key_id: key.map(String::from),
            }),
            ..provisioned(1)
        };
        assert!(has(&errors(&kms(None)), "keyId is required"));
        assert_eq!(validate(&kms(Some("alias/runnel"))), Ok(()));
        let none_with_key = StreamSpec {
            encryption: Some(Encryption {
                type_: EncryptionType::None,
                key_id: Some("k".into()),
            }),
            ..provisioned(1)
        };
        assert!(has(
            &errors(&none_with_key),
            "must not be set when spec.encryption.type is NONE"
        ));
    }

    #[test]
    fn tag_rules() {
        let mut spec = provisioned(1);
        spec.tags.insert("aws:owner".into(), "x".into());
        spec.tags.insert("team".into(), "v".repeat(257));
        let errs = errors(&spec);
        assert!(has(&errs, "reserved"));
        assert!(has(&errs, "at most 256 characters"));
        let mut many = provisioned(1);
        many.tags = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(has(&errors(&many), "at most 49 are allowed"));
        let mut owner = provisioned(1);
        owner.tags.insert("runnel.dev/owner".into(), "x/y".into());
        assert!(has(&errors(&owner), "reserved for the operator"));
    }

    #[test]
    fn consumer_rules() {
        let spec = StreamSpec {
            consumers: vec!["a".into(), "a".into(), "b c".into()],
            ..provisioned(1)
        };
        let errs = errors(&spec);
        assert!(has(&errs, "lists \"a\" more than once"));
        assert!(has(&errs, "\"b c\" is not a valid consumer name"));
        let many = StreamSpec {
            consumers: (0..21).map(|i| format!("c{i}")).collect(),
            ..provisioned(1)
        };
        assert!(has(&errors(&many), "at most 20 are allowed"));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let spec = StreamSpec {
            name: Some(String::new()),
            retention_period_hours: Some(0),
            ..Default::default()
        };
        assert_eq!(errors(&spec).len(), 3);
    }
}
