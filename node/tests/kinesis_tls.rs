//! The Kinesis API over TLS (`--tls-cert` / `--tls-key`): a CA and a server certificate made
//! in the test, a real `runnel-node standalone` serving them, and real clients that trust only
//! that CA: `aws-sdk-kinesis` (rustls), and raw hyper HTTP/2 and HTTP/1.1 connections that
//! check what ALPN negotiated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::config::Region;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_http_client::tls;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DnType;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use support::Node;
use tokio_rustls::TlsConnector;

/// A throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Runnel test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    async fn start_node(&self) -> Node {
        Node::start_with(&[
            "--tls-cert",
            self.cert().to_str().unwrap(),
            "--tls-key",
            self.key().to_str().unwrap(),
        ])
        .await
    }
}

fn sdk_client(endpoint: String, ca_pem: &str) -> Client {
    let trust = tls::TrustStore::empty().with_pem_certificate(ca_pem.as_bytes());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn rust_sdk_over_tls() {
    let pki = Pki::new();
    let node = pki.start_node().await;
    let c = sdk_client(format!("https://127.0.0.1:{}", node.kinesis_port), &pki.ca_pem);
    c.create_stream()
        .stream_name("tls")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    c.wait_until_stream_exists()
        .stream_name("tls")
        .wait(Duration::from_secs(60))
        .await
        .unwrap();
    let put = c
        .put_record()
        .stream_name("tls")
        .partition_key("k")
        .data(Blob::new("over tls"))
        .send()
        .await
        .unwrap();
    let it = c
        .get_shard_iterator()
        .stream_name("tls")
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let got = c
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.records()[0].data().as_ref(), b"over tls");
    assert_eq!(got.records()[0].sequence_number(), put.sequence_number());

    // The port speaks only TLS: a cleartext client fails, and so does a client that does not
    // trust the CA.
    let plain = aws_sdk_kinesis::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://127.0.0.1:{}", node.kinesis_port))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    assert!(Client::from_conf(plain).list_streams().send().await.is_err());
    let other = Pki::new();
    let untrusting = sdk_client(format!("https://127.0.0.1:{}", node.kinesis_port), &other.ca_pem);
    assert!(untrusting.list_streams().send().await.is_err());
}

/// A TLS connection to the node offering `alpn`, trusting only the test CA.
async fn connect(
    node: &Node,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", node.kinesis_port))
        .await
        .unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

fn list_streams_request() -> hyper::Request<Full<Bytes>> {
    hyper::Request::post("https://127.0.0.1/")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .header("x-amz-date", "20240101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

async fn check_list_streams(resp: hyper::Response<hyper::body::Incoming>) {
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["StreamNames"], serde_json::json!([]));
}

#[tokio::test]
async fn alpn_negotiates_http2_and_http1() {
    let pki = Pki::new();
    let node = pki.start_node().await;

    // A client offering both gets HTTP/2.
    let tls = connect(&node, &pki.ca_pem, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(list_streams_request()).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    check_list_streams(resp).await;

    // A client offering only HTTP/1.1 gets HTTP/1.1.
    let tls = connect(&node, &pki.ca_pem, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(list_streams_request()).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_11);
    check_list_streams(resp).await;
}

#[test]
fn unusable_certificate_files_stop_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    for (cert, key) in [
        (dir.path().join("missing.pem"), dir.path().join("missing.key")),
        (empty.clone(), empty.clone()),
    ] {
        let out = std::process::Command::new(support::node_bin())
            .arg("standalone")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--kinesis-addr", "127.0.0.1:0"])
            .args(["--grpc-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Kinesis API TLS"), "{stderr}");
    }
    // Either flag alone is refused by the command line.
    let out = std::process::Command::new(support::node_bin())
        .args(["standalone", "--tls-cert", "x.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
