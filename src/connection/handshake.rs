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
//! explicitly enabled.
//!
//! Answers are checked in constant time (`Mac::verify_slice`). Descriptors that arrive during
//! the handshake are closed; nothing but these frames is parsed before it succeeds.
//!
//! Source: CPython `Lib/multiprocessing/connection.py` (`deliver_challenge`,
//! `answer_challenge`, `_create_response`, `_verify_challenge`).

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

/// What one side of the handshake needs.
pub(crate) struct Auth<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) legacy: bool,
    pub(crate) deadline: Option<Instant>,
}

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

fn recv(c: &mut Connection, a: &Auth<'_>) -> Result<Vec<u8>, AuthError> {
    c.recv_raw(STEP_MAX, a.deadline).map_err(frame_err)
}

/// Challenges the peer and checks its answer (CPython's `deliver_challenge`).
pub(crate) fn deliver(c: &mut Connection, a: &Auth<'_>) -> Result<(), AuthError> {
    let mut m = [0u8; 8 + MESSAGE_LENGTH];
    m[..8].copy_from_slice(b"{sha256}");
    crate::sys::net::random(&mut m[8..]).map_err(AuthError::Io)?;
    send(c, &[CHALLENGE, &m])?;
    let answer = recv(c, a)?;
    match check(a, &m, &answer) {
        Ok(()) => send(c, &[WELCOME]),
        Err(e) => {
            // The peer may already be gone; the verdict is what matters.
            let _ = send(c, &[FAILURE]);
            Err(e)
        }
    }
}

/// Checks `answer` against the challenge `m` (CPython's `_verify_challenge`).
fn check(a: &Auth<'_>, m: &[u8], answer: &[u8]) -> Result<(), AuthError> {
    let (digest, mac) = match digest_of(answer) {
        Ok(d) => d,
        Err(_) => return Err(AuthError::WrongDigest),
    };
    match digest {
        Digest::Sha256 => hmac_sha256(a.key)
            .chain_update(m)
            .verify_slice(mac)
            .map_err(|_| AuthError::WrongDigest),
        Digest::LegacyMd5 | Digest::Md5 if !a.legacy => Err(AuthError::LegacyRefused),
        Digest::LegacyMd5 | Digest::Md5 => hmac_md5(a.key)
            .chain_update(m)
            .verify_slice(mac)
            .map_err(|_| AuthError::WrongDigest),
    }
}

/// Answers the peer's challenge and reads its verdict (CPython's `answer_challenge`).
pub(crate) fn answer(c: &mut Connection, a: &Auth<'_>) -> Result<(), AuthError> {
    let msg = recv(c, a)?;
    let Some(m) = msg.strip_prefix(CHALLENGE) else {
        return Err(AuthError::Protocol("expected a challenge".into()));
    };
    if m.len() < LEGACY_LENGTHS[0] {
        return Err(AuthError::Protocol(format!(
            "challenge too short: {} bytes",
            m.len()
        )));
    }
    let response: Vec<u8> = match digest_of(m)?.0 {
        Digest::Sha256 => {
            let mac = hmac_sha256(a.key).chain_update(m).finalize().into_bytes();
            [b"{sha256}".as_slice(), &mac].concat()
        }
        Digest::LegacyMd5 | Digest::Md5 if !a.legacy => return Err(AuthError::LegacyRefused),
        Digest::LegacyMd5 => hmac_md5(a.key)
            .chain_update(m)
            .finalize()
            .into_bytes()
            .to_vec(),
        Digest::Md5 => {
            let mac = hmac_md5(a.key).chain_update(m).finalize().into_bytes();
            [b"{md5}".as_slice(), &mac].concat()
        }
    };
    send(c, &[&response])?;
    let verdict = recv(c, a)?;
    if verdict == WELCOME {
        Ok(())
    } else if verdict == FAILURE {
        Err(AuthError::Rejected)
    } else {
        Err(AuthError::Protocol(
            "expected #WELCOME# or #FAILURE#".into(),
        ))
    }
}

/// The listener's side: deliver, then answer.
pub(crate) fn server(c: &mut Connection, a: &Auth<'_>) -> Result<(), AuthError> {
    deliver(c, a)?;
    answer(c, a)
}

/// The client's side: answer, then deliver.
pub(crate) fn client(c: &mut Connection, a: &Auth<'_>) -> Result<(), AuthError> {
    answer(c, a)?;
    deliver(c, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: &[u8], legacy: bool) -> Auth<'_> {
        Auth {
            key,
            legacy,
            deadline: Some(Instant::now() + std::time::Duration::from_secs(10)),
        }
    }

    fn run(
        server_key: &'static [u8],
        client_key: &'static [u8],
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let (mut a, mut b) = super::super::pipe(true).unwrap();
        let t = std::thread::spawn(move || client(&mut b, &auth(client_key, false)));
        let s = server(&mut a, &auth(server_key, false));
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
        let a = auth(b"key", true);
        let sha = hmac_sha256(b"key").chain_update(&m).finalize().into_bytes();
        let md5 = hmac_md5(b"key").chain_update(&m).finalize().into_bytes();
        assert_eq!(hex(&sha), CPYTHON_SHA256);
        assert_eq!(hex(&md5), CPYTHON_MD5);
        check(&a, &m, &[b"{sha256}".as_slice(), &sha].concat()).unwrap();
        check(&a, &m, &md5).unwrap();
        let strict = auth(b"key", false);
        assert!(matches!(
            check(&strict, &m, &md5),
            Err(AuthError::LegacyRefused)
        ));
        let mut bad = sha.to_vec();
        bad[0] ^= 1;
        assert!(matches!(
            check(&a, &m, &[b"{sha256}".as_slice(), &bad].concat()),
            Err(AuthError::WrongDigest)
        ));
    }

    const CPYTHON_SHA256: &str = "05b37335205f51ff483146e965fdf576943e0e64675a64ceccba80b6704d76b8";
    const CPYTHON_MD5: &str = "044b1f89b24a16c831a13039e4534300";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
