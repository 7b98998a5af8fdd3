//! `fleetwatch top`'s view against a real collector on the lab's control plane, and its errors
//! against servers that are not one: nothing listening, an HTTP 500, a page over the limit.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::client;
use fleetwatch_collector::CollectorConfig;
use fleetwatch_collector::top::view::{Audit, State};
use fleetwatch_collector::top::{self, FetchError, Options, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options(address: SocketAddr) -> Options {
    let url = Url::parse(&format!("http://{address}/metrics")).expect("a valid URL");
    Options {
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        ..Options::new(url)
    }
}

/// Whether the collector's page has the cluster's SLIs yet (its window needs two scrapes).
async fn has_cluster_slis(options: &Options) -> bool {
    top::read(options).await.is_ok_and(|reading| {
        reading
            .family("requests_per_second")
            .any(|s| s.label("replica") == "cluster")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn top_shows_the_replicas_and_the_cluster_of_a_running_collector() {
    let client = client().await;
    let server = client.server().to_owned();
    let mut config = CollectorConfig::default();
    // As in tests/apiserver.rs: short enough for a test, with room for a loaded machine.
    config.apiserver.interval = Duration::from_secs(15);
    config.apiserver.timeout = Duration::from_secs(15);
    config.apiserver.window = Duration::from_secs(30);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(fleetwatch_collector::run(config, client, listener, async {
        let _ = stopped.await;
    }));
    let options = options(address);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !has_cluster_slis(&options).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cluster SLIs on {} within 120 s",
            options.url.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let view = top::once(&options).await.expect("top reads the collector");
    let screen = top::render(&view);
    println!("{screen}");
    assert_eq!(view.bad_lines, 0, "the collector's own page parses cleanly");
    assert!(
        view.seconds >= 2.0,
        "two reads an interval apart: {}",
        view.seconds
    );
    let replica = view
        .replicas
        .iter()
        .find(|r| r.replica == server)
        .unwrap_or_else(|| panic!("no row for {server}:\n{screen}"));
    assert_eq!(replica.state, State::Up, "{screen}");
    // The collector's own scrapes and informers are requests: the rate cannot be zero.
    assert!(
        replica.requests_per_second.is_some_and(|r| r > 0.0),
        "{screen}"
    );
    assert!(replica.cpu_cores.is_some_and(|c| c > 0.0), "{screen}");
    assert!(
        replica.rss_bytes.is_some_and(|b| b > 10_000_000.0),
        "an API server holds more than 10 MB: {screen}"
    );
    assert!(
        replica.get_p99.is_some_and(|s| s > 0.0 && s < 10.0),
        "{screen}"
    );
    let cluster = view.replicas.last().expect("a cluster row");
    assert_eq!(cluster.replica, "cluster");
    let State::Cluster { up, of } = cluster.state else {
        panic!("the last row is the cluster's: {screen}");
    };
    assert!(
        up >= 1 && up <= of && of == view.replicas.len() - 1,
        "{screen}"
    );
    assert!(
        cluster.requests_per_second.is_some_and(|r| r > 0.0),
        "{screen}"
    );
    // Seat limits of the mandatory priority levels are always on the page.
    assert!(
        view.levels
            .rows
            .iter()
            .any(|l| l.level == "workload-low" && l.seat_limit.is_some_and(|s| s > 0.0)),
        "{screen}"
    );
    // The lab's admin client is in system:masters, whose requests APF dispatches as `exempt`.
    assert!(
        view.flows
            .rows
            .iter()
            .any(|f| f.dispatched_per_second > 0.0),
        "{screen}"
    );
    // The default configuration has no audit receiver.
    assert_eq!(view.audit, Audit::NotConfigured, "{screen}");
    assert!(screen.contains(top::AUDIT_NOT_CONFIGURED), "{screen}");

    stop.send(()).expect("the collector runs");
    tokio::time::timeout(Duration::from_secs(15), collector)
        .await
        .expect("the collector stops within its grace")
        .expect("the collector task")
        .expect("the collector ran cleanly");
}

#[tokio::test]
async fn a_url_where_nothing_listens_asks_whether_the_collector_runs() {
    // A port that was free a moment ago, and nothing listens on it now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let error = top::read(&options(address))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, FetchError::Refused { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("is the collector running? (connection refused to ")
            && message.contains(&address.to_string()),
        "{message}"
    );
}

/// Answers every connection with `response` after reading the request's head.
async fn serve(response: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n")
                    && stream.read(&mut byte).await.is_ok_and(|n| n == 1)
                {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(&response).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn an_http_error_names_the_url_and_the_status() {
    let response = concat!(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 16\r\n",
        "Connection: close\r\n\r\nrender failed: x"
    );
    let address = serve(response.as_bytes().to_vec()).await;
    let options = options(address);
    let error = top::read(&options).await.expect_err("a 500");
    assert!(
        matches!(error, FetchError::Status { status: 500, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&options.url.text) && message.contains("500 Internal Server Error"),
        "{message}"
    );
    assert!(
        message.contains("render failed"),
        "quotes the body: {message}"
    );
}

#[tokio::test]
async fn a_page_over_the_limit_is_an_error_and_a_chunked_page_with_a_bad_line_still_renders() {
    let page = include_str!("fixtures/top/busy-2.prom");
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in page.as_bytes().chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut options = options(serve(chunked).await);
    let reading = top::read(&options).await.expect("a chunked 200");
    assert_eq!(reading.bad_lines, 1, "the fixture's one bad line");
    let screen = top::render(&top::view(&options, &reading, &reading));
    assert!(screen.contains("https://10.0.0.3:6443  DOWN"), "{screen}");
    assert!(screen.contains("warning: 1 of"), "{screen}");

    options.max_bytes = page.len() - 1;
    let error = top::read(&options).await.expect_err("one byte over");
    assert!(matches!(error, FetchError::TooLarge { .. }), "{error:?}");
    let plain = format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{page}");
    options.url = Url::parse(&format!(
        "http://{}/metrics",
        serve(plain.into_bytes()).await
    ))
    .expect("a valid URL");
    let error = top::read(&options)
        .await
        .expect_err("no length, read to the end");
    assert!(
        error.to_string().contains("larger than the limit"),
        "{error}"
    );
    options.max_bytes = page.len();
    assert!(top::read(&options).await.is_ok(), "exactly at the limit");
}
