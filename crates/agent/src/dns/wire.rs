//! One A lookup on the wire: a query built with `hickory-proto`, sent raw over UDP to one server
//! (over TCP again if the answer is truncated), the reply read into an [`Outcome`].
//!
//! Owns: message building and checking (id, question), the UDP/TCP exchange and its timeout.
//! Must not: cache, retry a failed server, follow a search list or clamp TTLs — a TTL is
//! reported as the server sent it, because a cache's TTLs are what the probe watches.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// At most this many addresses of an answer are kept (the lowest, sorted): enough to tell a
/// service's answer changed, and a bound on what each name's state holds.
pub const MAX_ADDRESSES: usize = 32;

/// What one lookup ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with at least one A record: the addresses sorted and deduplicated (at most
    /// [`MAX_ADDRESSES`]), and the lowest TTL of the answer section (CNAMEs included: the
    /// chain is only as fresh as its shortest link).
    Answer {
        addresses: Vec<Ipv4Addr>,
        ttl: u32,
    },
    /// NOERROR without an A record: the name exists, with no IPv4 address.
    NoData,
    NxDomain,
    ServFail,
    Refused,
    /// No reply within the timeout.
    Timeout,
    /// A socket error, a malformed or mismatched reply, or another response code.
    Error(String),
}

/// The `result` label values, in the order the counters are kept.
pub const RESULTS: [&str; 7] = [
    "success", "nodata", "nxdomain", "servfail", "refused", "timeout", "error",
];

impl Outcome {
    /// Its `result` label value (one of [`RESULTS`]).
    pub fn result(&self) -> &'static str {
        RESULTS[self.index()]
    }

    /// Its index in [`RESULTS`].
    pub fn index(&self) -> usize {
        match self {
            Outcome::Answer { .. } => 0,
            Outcome::NoData => 1,
            Outcome::NxDomain => 2,
            Outcome::ServFail => 3,
            Outcome::Refused => 4,
            Outcome::Timeout => 5,
            Outcome::Error(_) => 6,
        }
    }

    /// Whether the server answered the question, yes or no: it works, whatever the name's fate.
    pub fn answered(&self) -> bool {
        matches!(
            self,
            Outcome::Answer { .. } | Outcome::NoData | Outcome::NxDomain
        )
    }
}

/// What a datagram turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The reply to our query.
    Outcome(Outcome),
    /// The reply to our query, truncated: ask again over TCP.
    Truncated,
    /// Not a reply to our query (another id): a late reply to an earlier query, or spoofing.
    NotOurs,
}

/// The query for `name`'s A records, with id `id` and recursion desired (the node's resolver
/// is a recursive cache; an authoritative server ignores the bit).
pub fn query(id: u16, name: &Name) -> Result<Vec<u8>, String> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), RecordType::A));
    message
        .to_vec()
        .map_err(|e| format!("building the query: {e}"))
}

/// Reads `bytes` as the reply to query `id` for `name`'s A records. Never panics, whatever the
/// bytes (a proptest checks).
pub fn read_reply(bytes: &[u8], id: u16, name: &Name) -> Reply {
    // The id is the first two bytes: a datagram for another query is skipped even when it is
    // garbage, rather than ending our lookup as an error.
    if bytes.len() < 2 || u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return Reply::NotOurs;
    }
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        Err(e) => return Reply::Outcome(Outcome::Error(format!("malformed reply: {e}"))),
    };
    if message.metadata.message_type != MessageType::Response {
        return Reply::Outcome(Outcome::Error("a query, not a reply".to_owned()));
    }
    if !asks(&message, name) {
        return Reply::Outcome(Outcome::Error("a reply to another question".to_owned()));
    }
    if message.metadata.truncation {
        return Reply::Truncated;
    }
    Reply::Outcome(outcome(&message))
}

/// Whether `message`'s question is `name`'s A records (names compare case-insensitively).
fn asks(message: &Message, name: &Name) -> bool {
    match message.queries.as_slice() {
        [query] => query.name() == name && query.query_type() == RecordType::A,
        _ => false,
    }
}

fn outcome(message: &Message) -> Outcome {
    match message.metadata.response_code {
        ResponseCode::NoError => answer(message),
        ResponseCode::NXDomain => Outcome::NxDomain,
        ResponseCode::ServFail => Outcome::ServFail,
        ResponseCode::Refused => Outcome::Refused,
        other => Outcome::Error(format!("response code {other}")),
    }
}

fn answer(message: &Message) -> Outcome {
    let mut addresses: Vec<Ipv4Addr> = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    if addresses.is_empty() {
        return Outcome::NoData;
    }
    addresses.sort_unstable();
    addresses.dedup();
    addresses.truncate(MAX_ADDRESSES);
    let ttl = message
        .answers
        .iter()
        .map(|record| record.ttl)
        .min()
        .unwrap_or(0);
    Outcome::Answer { addresses, ttl }
}

/// Looks `name` up at `server`, all of it (UDP, and TCP if truncated) within `timeout`.
pub async fn lookup(server: SocketAddr, name: &Name, timeout: Duration) -> Outcome {
    tokio::time::timeout(timeout, exchange(server, name))
        .await
        .unwrap_or(Outcome::Timeout)
}

async fn exchange(server: SocketAddr, name: &Name) -> Outcome {
    // A fresh id and (below) a fresh source port per query: a spoofed reply has to guess both.
    let id: u16 = rand::random();
    let query = match query(id, name) {
        Ok(query) => query,
        Err(e) => return Outcome::Error(e),
    };
    match udp(server, &query, id, name).await {
        Ok(Reply::Outcome(outcome)) => outcome,
        Ok(Reply::Truncated) => tcp(server, &query, id, name)
            .await
            .unwrap_or_else(|e| Outcome::Error(format!("over TCP: {e}"))),
        Ok(Reply::NotOurs) => Outcome::Error("no reply of ours".to_owned()),
        Err(e) => Outcome::Error(e.to_string()),
    }
}

async fn udp(server: SocketAddr, query: &[u8], id: u16, name: &Name) -> std::io::Result<Reply> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from anyone else, and a closed port on the server
    // comes back as an error (ICMP unreachable) at once instead of a timeout.
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buffer = vec![0; 65_535];
    loop {
        let read = socket.recv(&mut buffer).await?;
        match read_reply(&buffer[..read], id, name) {
            Reply::NotOurs => continue,
            reply => return Ok(reply),
        }
    }
}

async fn tcp(server: SocketAddr, query: &[u8], id: u16, name: &Name) -> Result<Outcome, String> {
    let length = u16::try_from(query.len()).map_err(|_| "query too long".to_owned())?;
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let length = stream.read_u16().await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0; usize::from(length)];
    stream
        .read_exact(&mut buffer)
        .await
        .map_err(|e| e.to_string())?;
    match read_reply(&buffer, id, name) {
        Reply::Outcome(outcome) => Ok(outcome),
        Reply::Truncated => Err("truncated even over TCP".to_owned()),
        Reply::NotOurs => Err("a reply with another id".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME};
    use proptest::prelude::*;

    use super::*;

    fn name() -> Name {
        Name::from_ascii("kubernetes.default.svc.cluster.local.").expect("name")
    }

    fn reply(id: u16, code: ResponseCode, answers: Vec<Record>) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Response, OpCode::Query);
        message.metadata.response_code = code;
        message.add_query(Query::query(name(), RecordType::A));
        message.add_answers(answers);
        message.to_vec().expect("encode")
    }

    fn a(ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(name(), ttl, RData::A(A(Ipv4Addr::from(ip))))
    }

    #[test]
    fn a_query_asks_for_the_name_s_a_records_recursively() {
        let bytes = query(7, &name()).expect("query");
        let message = Message::from_vec(&bytes).expect("decode");
        assert_eq!(message.metadata.id, 7);
        assert!(message.metadata.recursion_desired);
        assert_eq!(message.metadata.message_type, MessageType::Query);
        assert!(asks(&message, &name()));
    }

    #[test]
    fn an_answer_is_its_sorted_addresses_and_lowest_ttl() {
        let cname = Record::from_rdata(
            name(),
            3,
            RData::CNAME(CNAME(Name::from_ascii("x.example.").expect("name"))),
        );
        let bytes = reply(
            9,
            ResponseCode::NoError,
            vec![
                cname,
                a([10, 0, 0, 2], 30),
                a([10, 0, 0, 1], 20),
                a([10, 0, 0, 2], 30),
            ],
        );
        assert_eq!(
            read_reply(&bytes, 9, &name()),
            Reply::Outcome(Outcome::Answer {
                addresses: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
                ttl: 3,
            })
        );
    }

    #[test]
    fn response_codes_are_their_outcomes() {
        let cases = [
            (ResponseCode::NXDomain, Outcome::NxDomain),
            (ResponseCode::ServFail, Outcome::ServFail),
            (ResponseCode::Refused, Outcome::Refused),
            (ResponseCode::NoError, Outcome::NoData),
        ];
        for (code, want) in cases {
            assert_eq!(
                read_reply(&reply(1, code, vec![]), 1, &name()),
                Reply::Outcome(want),
                "{code:?}"
            );
        }
        let Reply::Outcome(Outcome::Error(message)) =
            read_reply(&reply(1, ResponseCode::NotImp, vec![]), 1, &name())
        else {
            panic!("NOTIMP is an error");
        };
        assert!(message.contains("response code"), "{message}");
    }

    #[test]
    fn another_id_is_not_ours_and_another_question_is_an_error() {
        let bytes = reply(1, ResponseCode::NoError, vec![a([10, 0, 0, 1], 5)]);
        assert_eq!(read_reply(&bytes, 2, &name()), Reply::NotOurs);
        let other = Name::from_ascii("other.example.").expect("name");
        assert!(matches!(
            read_reply(&bytes, 1, &other),
            Reply::Outcome(Outcome::Error(_))
        ));
        // Our own query echoed back is not an answer.
        let echoed = query(1, &name()).expect("query");
        assert!(matches!(
            read_reply(&echoed, 1, &name()),
            Reply::Outcome(Outcome::Error(_))
        ));
    }

    #[test]
    fn the_question_s_name_compares_case_insensitively() {
        let bytes = reply(1, ResponseCode::NoError, vec![a([10, 0, 0, 1], 5)]);
        let upper = Name::from_ascii("KUBERNETES.default.svc.cluster.local.").expect("name");
        assert!(matches!(
            read_reply(&bytes, 1, &upper),
            Reply::Outcome(Outcome::Answer { .. })
        ));
    }

    #[test]
    fn a_truncated_reply_asks_for_tcp() {
        let mut message =
            Message::from_vec(&reply(3, ResponseCode::NoError, vec![])).expect("decode");
        message.metadata.truncation = true;
        let bytes = message.to_vec().expect("encode");
        assert_eq!(read_reply(&bytes, 3, &name()), Reply::Truncated);
    }

    #[test]
    fn addresses_are_bounded() {
        let answers = (0..100u8).map(|i| a([10, 0, 1, i], 5)).collect();
        let Reply::Outcome(Outcome::Answer { addresses, .. }) =
            read_reply(&reply(4, ResponseCode::NoError, answers), 4, &name())
        else {
            panic!("an answer");
        };
        assert_eq!(addresses.len(), MAX_ADDRESSES);
        assert_eq!(addresses[0], Ipv4Addr::new(10, 0, 1, 0));
    }

    #[test]
    fn garbage_with_our_id_is_an_error() {
        assert!(matches!(
            read_reply(&[0, 5, 0xff, 0xff, 1], 5, &name()),
            Reply::Outcome(Outcome::Error(_))
        ));
        assert_eq!(read_reply(&[0], 5, &name()), Reply::NotOurs);
    }

    proptest! {
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let id = match bytes.as_slice() {
                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            };
            let _ = read_reply(&bytes, id, &name());
        }

        #[test]
        fn a_valid_reply_with_flipped_bytes_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = reply(1, ResponseCode::NoError, vec![a([10, 0, 0, 1], 5), a([10, 0, 0, 2], 6)]);
            for (at, value) in flips {
                let at = 2 + at % (bytes.len() - 2); // keep the id, so the bytes are parsed
                bytes[at] = value;
            }
            bytes.truncate(2 + cut % (bytes.len() - 1));
            let _ = read_reply(&bytes, 1, &name());
        }
    }
}
