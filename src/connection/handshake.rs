//! The authkey handshake of Python's `multiprocessing.connection`, byte for byte.
//!
//! One direction ("deliver"): the challenger sends `#CHALLENGE#` + M, where M is `{sha256}`
//! and 40 random bytes; the other side answers `{sha256}` + HMAC-SHA256(authkey, M) (the MAC
//! covers all of M, prefix included); the challenger replies `#WELCOME#` or `#FAILURE#`. The
//! listener delivers first and then answers the client's challenge; the client does the
//! reverse. Every step reads at most 256 bytes, under a deadline (Python has none).
//!
//! Python 3.11 and older speak a legacy form: M is 20 random bytes and the answer is the raw
//! 16-byte HMAC-MD5. A 3.11 peer answers a modern challenge with HMAC-MD5 over the whole
//! 48-byte M. Both forms are recognised by length, as CPython 3.12 does, and accepted only when
//! explicitly enabled. A challenge this side refuses is answered with `#FAILURE#`, which the
//! challenger takes for a wrong digest: Python then raises `AuthenticationError` instead of
//! seeing the connection close.
//!
//! The handshake is a state machine ([`Handshake`]) fed one message at a time, so that it can
//! run without blocking: [`Handshake::advance`] reads what has arrived and never waits, which
//! lets one thread drive many handshakes (the listener's `accept` does, and so can a server
//! polling many sockets); [`Handshake::run`] waits for the peer until a deadline. The
//! messages this side sends are a few dozen bytes each, three at most, so sending them never
//! waits for a socket buffer that a peer who does not read has filled.
//!
//! Answers are checked in constant time (`Mac::verify_slice`). Descriptors that arrive during
//! the handshake are closed; nothing but these frames is parsed before it succeeds.
//!
//! Source: CPython `Lib/multiprocessing/connection.py` (`deliver_challenge`,
//! `answer_challenge`, `_create_response`, `_verify_challenge`).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use hmac::{KeyInit, Mac};

use super::conn::Connection;
use super::error::{AuthError, is_disconnect};
use super::frame::FrameError;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a modern challenge (CPython's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// Length of a legacy challenge, and of a raw HMAC-MD5 answer.
const LEGACY_LENGTHS: [usize; 2] = [20, 16];
/// Each handshake step reads at most this many bytes.
const STEP_MAX: u64 = 256;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;
type HmacMd5 = hmac::Hmac<md5::Md5>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    /// Raw HMAC-MD5, no prefix (Python ≤ 3.11).
    LegacyMd5,
    /// `{md5}` prefix.
    Md5,
    /// `{sha256}` prefix.
    Sha256,
}

/// Splits a challenge or an answer into its digest and payload, as CPython's
/// `_get_digest_name_and_payload`.
fn digest_of(message: &[u8]) -> Result<(Digest, &[u8]), AuthError> {
    if LEGACY_LENGTHS.contains(&message.len()) {
        return Ok((Digest::LegacyMd5, message));
    }
    if message.first() == Some(&b'{') {
        // `}` must be within the first 10 bytes (the longest name is 8).
        if let Some(close) = message.iter().take(10).skip(1).position(|&b| b == b'}') {
            let close = close + 1;
            let payload = &message[close + 1..];
            return match &message[1..close] {
                b"sha256" => Ok((Digest::Sha256, payload)),
                b"md5" => Ok((Digest::Md5, payload)),
                name @ (b"sha384" | b"sha3_256" | b"sha3_384") => Err(AuthError::Protocol(
                    format!("unsupported digest {}", String::from_utf8_lossy(name)),
                )),
                _ => Err(AuthError::Protocol("unknown digest".into())),
            };
        }
    }
    Err(AuthError::Protocol(
        "unsupported message length, missing digest prefix, or unsupported digest".into(),
    ))
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn hmac_md5(key: &[u8]) -> HmacMd5 {
    <HmacMd5 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn frame_err(e: FrameError) -> AuthError {
    match e {
        FrameError::Closed => AuthError::Disconnected,
        FrameError::TimedOut => AuthError::TimedOut,
        FrameError::Io(e) if is_disconnect(&e) => AuthError::Disconnected,
        FrameError::Io(e) => AuthError::Io(e),
        FrameError::TooLarge { len, .. } => {
            AuthError::Protocol(format!("handshake message of {len} bytes is too long"))
        }
        e @ (FrameError::Truncated { .. }
        | FrameError::BadLength(_)
        | FrameError::DescriptorsLost(_)) => AuthError::Protocol(e.to_string()),
    }
}

fn send(c: &mut Connection, parts: &[&[u8]]) -> Result<(), AuthError> {
    let msg = parts.concat();
    c.send_bytes(&msg).map_err(|e| match e {
        super::SendError::Disconnected => AuthError::Disconnected,
        super::SendError::Io(e) => AuthError::Io(e),
        e => AuthError::Io(std::io::Error::other(e.to_string())),
    })
}

/// The next handshake message if one has arrived whole, without waiting.
fn try_recv(c: &mut Connection) -> Result<Option<Vec<u8>>, AuthError> {
    // A deadline of now: the reader looks at what is there and reads only what poll(2) says
    // is readable, so it never blocks. A partial message stays buffered for the next call.
    match c.recv_raw(STEP_MAX, Some(Instant::now())) {
        Ok(m) => Ok(Some(m)),
        Err(FrameError::TimedOut) => Ok(None),
        Err(e) => Err(frame_err(e)),
    }
}

/// What the handshake waits for next.
#[derive(Debug)]
enum Step {
    /// The peer's answer to our challenge `M`.
    Answer([u8; 8 + MESSAGE_LENGTH]),
    /// The peer's challenge.
    Challenge,
    /// The peer's verdict on our answer.
    Verdict,
    /// Nothing: the handshake succeeded.
    Done,
    /// Nothing: the handshake failed.
    Failed,
}

/// One side of a handshake in progress.
pub(crate) struct Handshake {
    key: Arc<[u8]>,
    legacy: bool,
    /// The listener's side (deliver, then answer) or the client's (answer, then deliver).
    server: bool,
    step: Step,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("server", &self.server)
            .field("legacy", &self.legacy)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// The listener's side: sends the challenge on `c` at once.
    pub(crate) fn server(
        c: &mut Connection,
        key: Arc<[u8]>,
        legacy: bool,
    ) -> Result<Self, AuthError> {
        let mut h = Handshake {
            key,
            legacy,
            server: true,
            step: Step::Challenge,
        };
        h.challenge(c)?;
        Ok(h)
    }

    /// The client's side: waits for the listener's challenge.
    pub(crate) fn client(key: Arc<[u8]>, legacy: bool) -> Self {
        Handshake {
            key,
            legacy,
            server: false,
            step: Step::Challenge,
        }
    }

    /// Sends our challenge (CPython's `deliver_challenge`, first half).
    fn challenge(&mut self, c: &mut Connection) -> Result<(), AuthError> {
        let mut m = [0u8; 8 + MESSAGE_LENGTH];
        m[..8].copy_from_slice(b"{sha256}");
        crate::sys::net::random(&mut m[8..]).map_err(AuthError::Io)?;
        send(c, &[CHALLENGE, &m])?;
        self.step = Step::Answer(m);
        Ok(())
    }

    /// Reads every handshake message that has arrived on `c` and answers it, without waiting.
    /// `Ok(true)` once the handshake has succeeded; after an error it is over.
    pub(crate) fn advance(&mut self, c: &mut Connection) -> Result<bool, AuthError> {
        loop {
            match self.step {
                Step::Done => return Ok(true),
                Step::Failed => return Err(AuthError::Protocol("the handshake failed".into())),
                _ => {}
            }
            let Some(msg) = try_recv(c).inspect_err(|_| self.step = Step::Failed)? else {
                return Ok(false);
            };
            if let Err(e) = self.on_message(c, &msg) {
                self.step = Step::Failed;
                return Err(e);
            }
        }
    }

    /// Runs the handshake on `c` to its end, waiting for the peer until `deadline` (`None`:
    /// forever).
    pub(crate) fn run(
        &mut self,
        c: &mut Connection,
        deadline: Option<Instant>,
    ) -> Result<(), AuthError> {
        while !self.advance(c)? {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !crate::sys::socket::wait_readable(c.as_fd(), left).map_err(AuthError::Io)? {
                self.step = Step::Failed;
                return Err(AuthError::TimedOut);
            }
        }
        Ok(())
    }

    fn on_message(&mut self, c: &mut Connection, msg: &[u8]) -> Result<(), AuthError> {
        match std::mem::replace(&mut self.step, Step::Failed) {
            Step::Answer(m) => {
                // CPython's `deliver_challenge`, second half.
                match check(&self.key, self.legacy, &m, msg) {
                    Ok(()) => send(c, &[WELCOME])?,
                    Err(e) => {
                        // The peer may already be gone; the verdict is what matters.
                        let _ = send(c, &[FAILURE]);
                        return Err(e);
                    }
                }
                self.step = if self.server {
                    Step::Challenge
                } else {
                    Step::Done
                };
            }
            Step::Challenge => {
                // CPython's `answer_challenge`, first half.
                match response(&self.key, self.legacy, msg) {
                    Ok(r) => send(c, &[&r])?,
                    Err(e) => {
                        // A wrong answer, so that the challenger reports a failed
                        // authentication rather than a closed connection.
                        let _ = send(c, &[FAILURE]);
                        return Err(e);
                    }
                }
                self.step = Step::Verdict;
            }
            Step::Verdict => {
                if msg == FAILURE {
                    return Err(AuthError::Rejected);
                } else if msg != WELCOME {
                    return Err(AuthError::Protocol(
                        "expected #WELCOME# or #FAILURE#".into(),
                    ));
                }
                if self.server {
                    self.step = Step::Done;
                } else {
                    self.challenge(c)?;
                }
            }
            Step::Done | Step::Failed => {
                return Err(AuthError::Protocol(
                    "message after the handshake ended".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Checks `answer` against our challenge `m` (CPython's `_verify_challenge`).
fn check(key: &[u8], legacy: bool, m: &[u8], answer: &[u8]) -> Result<(), AuthError> {
    let (digest, mac) = match digest_of(answer) {
        Ok(d) => d,
        Err(_) => return Err(AuthError::WrongDigest),
    };
    match digest {
        Digest::Sha256 => hmac_sha256(key)
            .chain_update(m)
            .verify_slice(mac)
            .map_err(|_| AuthError::WrongDigest),
        Digest::LegacyMd5 | Digest::Md5 if !legacy => Err(AuthError::LegacyRefused),
        Digest::LegacyMd5 | Digest::Md5 => hmac_md5(key)
            .chain_update(m)
            .verify_slice(mac)
            .map_err(|_| AuthError::WrongDigest),
    }
}

/// Our answer to the peer's challenge message `msg` (CPython's `_create_response`).
fn response(key: &[u8], legacy: bool, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
    let Some(m) = msg.strip_prefix(CHALLENGE) else {
        return Err(AuthError::Protocol("expected a challenge".into()));
    };
    if m.len() < LEGACY_LENGTHS[0] {
        return Err(AuthError::Protocol(format!(
            "challenge too short: {} bytes",
            m.len()
        )));
    }
    Ok(match digest_of(m)?.0 {
        Digest::Sha256 => {
            let mac = hmac_sha256(key).chain_update(m).finalize().into_bytes();
            [b"{sha256}".as_slice(), &mac].concat()
        }
        Digest::LegacyMd5 | Digest::Md5 if !legacy => return Err(AuthError::LegacyRefused),
        Digest::LegacyMd5 => hmac_md5(key)
            .chain_update(m)
            .finalize()
            .into_bytes()
            .to_vec(),
        Digest::Md5 => {
            let mac = hmac_md5(key).chain_update(m).finalize().into_bytes();
            [b"{md5}".as_slice(), &mac].concat()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        server_key: &'static [u8],
        client_key: &'static [u8],
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (mut a, mut b) = super::super::pipe(true).unwrap();
        let deadline = Some(Instant::now() + std::time::Duration::from_secs(10));
        let t = std::thread::spawn(move || {
            Handshake::client(client_key.into(), false).run(&mut b, deadline)
        });
        let s = Handshake::server(&mut a, server_key.into(), false)
            .and_then(|mut h| h.run(&mut a, deadline));
        drop(a);
        (s, t.join().unwrap())
    }

    #[test]
    fn same_key_passes_both_ways() {
        let (s, c) = run(b"secret", b"secret");
        s.unwrap();
        c.unwrap();
    }

    #[test]
    fn wrong_key_fails_both_ways() {
        let (s, c) = run(b"secret", b"other");
        assert!(matches!(s, Err(AuthError::WrongDigest)), "{s:?}");
        assert!(matches!(c, Err(AuthError::Rejected)), "{c:?}");
    }

    #[test]
    fn both_sides_advance_without_blocking_in_one_thread() {
        let (mut a, mut b) = super::super::pipe(true).unwrap();
        let mut server = Handshake::server(&mut a, b"k".as_slice().into(), false).unwrap();
        let mut client = Handshake::client(b"k".as_slice().into(), false);
        // Nothing has arrived for the server yet: it returns at once.
        assert!(!server.advance(&mut a).unwrap());
        let mut rounds = 0;
        while !(client.advance(&mut b).unwrap() & server.advance(&mut a).unwrap()) {
            rounds += 1;
            assert!(rounds < 10, "{server:?} {client:?}");
        }
        a.send_bytes(b"after").unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"after");
    }

    #[test]
    fn a_refused_challenge_is_answered_with_failure() {
        // A legacy (20-byte) challenge, refused: the challenger gets #FAILURE# as the answer.
        let (mut a, mut b) = super::super::pipe(true).unwrap();
        a.send_bytes(&[CHALLENGE, &[7u8; 20]].concat()).unwrap();
        let deadline = Some(Instant::now() + std::time::Duration::from_secs(10));
        let err = Handshake::client(b"k".as_slice().into(), false)
            .run(&mut b, deadline)
            .unwrap_err();
        assert!(matches!(err, AuthError::LegacyRefused), "{err:?}");
        assert!(err.to_string().contains("allow_legacy_md5"), "{err}");
        assert_eq!(a.recv_bytes().unwrap(), FAILURE);
    }

    #[test]
    fn digest_prefixes_parse_as_cpython() {
        assert_eq!(digest_of(&[0; 20]).unwrap().0, Digest::LegacyMd5);
        assert_eq!(digest_of(&[0; 16]).unwrap().0, Digest::LegacyMd5);
        let (d, p) = digest_of(b"{sha256}abc").unwrap();
        assert_eq!((d, p), (Digest::Sha256, &b"abc"[..]));
        assert!(digest_of(b"{sha512}abcdefghijklmnop").is_err());
        assert!(digest_of(b"{sha3_384}abcdefghijklmnop").is_err());
        assert!(digest_of(b"no prefix at all, long enough").is_err());
        assert!(digest_of(b"{0123456789}abcdefghijklmnop").is_err());
    }

    /// Vectors computed with CPython: `hmac.new(b"key", b"{sha256}" + bytes(range(40)),
    /// "sha256")` and the MD5 one over the same 48 bytes.
    #[test]
    fn answers_match_cpython() {
        let mut m = b"{sha256}".to_vec();
        m.extend(0u8..40);
        let sha = hmac_sha256(b"key").chain_update(&m).finalize().into_bytes();
        let md5 = hmac_md5(b"key").chain_update(&m).finalize().into_bytes();
        assert_eq!(hex(&sha), CPYTHON_SHA256);
        assert_eq!(hex(&md5), CPYTHON_MD5);
        check(b"key", true, &m, &[b"{sha256}".as_slice(), &sha].concat()).unwrap();
        check(b"key", true, &m, &md5).unwrap();
        assert!(matches!(
            check(b"key", false, &m, &md5),
            Err(AuthError::LegacyRefused)
        ));
        let mut bad = sha.to_vec();
        bad[0] ^= 1;
        assert!(matches!(
            check(b"key", true, &m, &[b"{sha256}".as_slice(), &bad].concat()),
            Err(AuthError::WrongDigest)
        ));
    }

    const CPYTHON_SHA256: &str = "05b37335205f51ff483146e965fdf576943e0e64675a64ceccba80b6704d76b8";
    const CPYTHON_MD5: &str = "044b1f89b24a16c831a13039e4534300";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
