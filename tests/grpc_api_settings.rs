//! The API server's production settings through the real binary: mutual TLS, a config file
//! with flags and the environment over it, the response size limit and the store reader limit.

use super::*;

#[test]
fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() -> TestResult {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let (_tmp, data, _model) = ingested();
    let tls = repo_root().join("tests/data/tls");
    let server = serve_with(
        &data,
        &[
            "--tls-cert".as_ref(),
            tls.join("server.pem").as_os_str(),
            "--tls-key".as_ref(),
            tls.join("server.key").as_os_str(),
            "--tls-client-ca".as_ref(),
            tls.join("ca.pem").as_os_str(),
        ],
    );
    let ca = Certificate::from_pem(std::fs::read(tls.join("ca.pem"))?);
    let client_identity = Identity::from_pem(
        std::fs::read(tls.join("client.pem"))?,
        std::fs::read(tls.join("client.key"))?,
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let get = |channel: Channel| async move {
            EntitiesClient::new(channel)
                .get_entities(GetEntitiesRequest {
                    ids: vec!["tt-0001".into()],
                    vector_names: vec![],
                    min_tag_confidence: 0.0,
                    packed_vectors: false,
                })
                .await
        };
        let endpoint = |tls: Option<ClientTlsConfig>| -> Result<_, Box<dyn std::error::Error>> {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let endpoint = Channel::from_shared(format!("{scheme}://{}", server.addr))?;
            Ok(match tls {
                Some(tls) => endpoint.tls_config(tls)?,
                None => endpoint,
            })
        };
        // With the CA and a client certificate: served.
        let full = ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost")
            .identity(client_identity);
        let channel = endpoint(Some(full))?.connect().await?;
        assert!(get(channel).await?.get_ref().results[0].found);
        // Without a client certificate, or in plain text: no service.
        let no_identity = ClientTlsConfig::new()
            .ca_certificate(ca)
            .domain_name("localhost");
        for tls in [Some(no_identity), None] {
            let refused = match endpoint(tls)?.connect().await {
                Err(_) => true,
                Ok(channel) => get(channel).await.is_err(),
            };
            assert!(refused, "a client without a certificate was served");
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(server);

    // A key that is not PEM stops serve before it listens, naming the file.
    let out = tessera()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(tls.join("server.pem"))
        .arg("--tls-key")
        .arg(tls.join("README.md"))
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS key") && stderr.contains("README.md"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_config_file_sets_flags_and_bad_keys_are_refused() -> TestResult {
    let (tmp, data, _model) = ingested();
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, "ranker-a:0123456789abcdef0123\n")?;
    let config = tmp.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "# serve settings\n[serve]\ntokens_file = {:?}\nmax_ids_per_call = 2\n",
            tokens.display()
        ),
    )?;
    let server = serve_with(&data, &["--config".as_ref(), config.as_os_str()]);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let mut request = tonic::Request::new(GetEntitiesRequest {
            ids: vec!["a".into(), "b".into(), "c".into()],
            vector_names: vec![],
            min_tag_confidence: 0.0,
            packed_vectors: false,
        });
        let status = client
            .get_entities(GetEntitiesRequest {
                ids: vec!["a".into()],
                vector_names: vec![],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await
            .err()
            .ok_or("the file's tokens were not applied")?;
        assert_eq!(status.code(), Code::Unauthenticated);
        request
            .metadata_mut()
            .insert("authorization", "Bearer 0123456789abcdef0123".parse()?);
        let status = client
            .get_entities(request)
            .await
            .err()
            .ok_or("the file's id limit was not applied")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("the limit is 2"),
            "{}",
            status.message()
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(server);

    std::fs::write(&config, "[serve]\nmax_inflight = 3\n")?;
    let out = tessera()
        .args(["serve", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serve.max_inflight") && stderr.contains("max_in_flight"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn responses_stay_under_the_size_limit() -> TestResult {
    let (_tmp, data, _model) = ingested();
    let titles = catalog::read_jsonl(&example_catalog())?;
    let server = serve_with(&data, &["--max-response-bytes", "4000"]);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        // All titles at once would be over 4000 bytes: refused whole, with the reason.
        let status = client
            .get_entities(GetEntitiesRequest {
                ids: titles.iter().map(|t| t.id.clone()).collect(),
                vector_names: vec![],
                min_tag_confidence: 0.0,
                packed_vectors: false,
            })
            .await
            .err()
            .ok_or("an oversized response was sent")?;
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("ask for fewer ids"),
            "{}",
            status.message()
        );
        // A scan asking for big pages gets smaller ones, and every title.
        let mut stream = client
            .scan_entities(ScanEntitiesRequest {
                page_size: 100,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut ids = Vec::new();
        let mut pages = 0;
        while let Some(page) = stream.message().await? {
            pages += 1;
            ids.extend(page.entities.into_iter().map(|e| e.id));
        }
        assert_eq!(ids.len(), titles.len());
        assert!(
            pages > 1,
            "one page of {} titles fit in 4000 bytes?",
            ids.len()
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[test]
fn one_store_reader_serves_many_concurrent_calls_in_turn() -> TestResult {
    let (_tmp, data, _model) = ingested();
    let titles = catalog::read_jsonl(&example_catalog())?;
    let server = serve_with(
        &data,
        &["--store-readers", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let found = runtime.block_on(async {
        let client = EntitiesClient::connect(format!("http://{}", server.addr)).await?;
        let calls: Vec<_> = (0..24)
            .map(|i| {
                let mut client = client.clone();
                let id = titles[i % titles.len()].id.clone();
                tokio::spawn(async move {
                    let response = client
                        .get_entities(GetEntitiesRequest {
                            ids: vec![id],
                            vector_names: vec![],
                            min_tag_confidence: 0.0,
                            packed_vectors: false,
                        })
                        .await?;
                    Ok::<bool, tonic::Status>(response.get_ref().results[0].found)
                })
            })
            .collect();
        let mut found = 0;
        for call in calls {
            found += usize::from(call.await??);
        }
        Ok::<usize, Box<dyn std::error::Error>>(found)
    })?;
    assert_eq!(found, 24, "every call waited its turn and was answered");
    let metrics = scrape(server.metrics.as_deref().ok_or("no metrics endpoint")?);
    for line in [
        "tessera_store_reads_waiting 0",
        "tessera_store_read_duration_seconds_count 24",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    Ok(())
}
