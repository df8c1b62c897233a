//! Tests of the multipart stage: boundaries, which parts are text, a whole form with text and
//! file parts, every split of it, malformed bodies.

use super::*;
use crate::body::BodyRewriter;
use crate::config::Config;
use crate::stream::{BodyKind, BodyStream};
use crate::testing::{deliver, Ending};

fn requests() -> BodyRewriter {
    let config = Config::from_json(
        br#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true}]}"#,
    )
    .unwrap();
    BodyRewriter::for_requests(&config).unwrap()
}

const CONTENT_TYPE: &[u8] = b"multipart/form-data; boundary=----WebKitFormBoundaryX3sQ";

/// A form as a browser posts it: text fields with mirror names, a JSON part, and a file whose
/// bytes name the mirror too (and contain things that look like delimiters but are not).
fn form(file: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    let mut want = Vec::new();
    let both = |body: &mut Vec<u8>, want: &mut Vec<u8>, bytes: &[u8]| {
        body.extend_from_slice(bytes);
        want.extend_from_slice(bytes);
    };
    let each = |body: &mut Vec<u8>, want: &mut Vec<u8>, sent: &[u8], arrives: &[u8]| {
        body.extend_from_slice(sent);
        want.extend_from_slice(arrives);
    };
    both(&mut body, &mut want, b"------WebKitFormBoundaryX3sQ\r\n");
    both(
        &mut body,
        &mut want,
        b"Content-Disposition: form-data; name=\"next\"\r\n\r\n",
    );
    each(
        &mut body,
        &mut want,
        b"https://www.example.cn/admin/",
        b"https://www.example.com/admin/",
    );
    both(
        &mut body,
        &mut want,
        b"\r\n------WebKitFormBoundaryX3sQ\r\n",
    );
    both(
        &mut body,
        &mut want,
        b"Content-Disposition: form-data; name=\"email\"\r\n\r\nadmin@example.cn",
    );
    both(
        &mut body,
        &mut want,
        b"\r\n------WebKitFormBoundaryX3sQ\r\n",
    );
    both(
        &mut body,
        &mut want,
        b"Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n",
    );
    each(
        &mut body,
        &mut want,
        b"{\"u\":\"https:\\/\\/cdn.example.cn\\/a\"}",
        b"{\"u\":\"https:\\/\\/cdn.example.com\\/a\"}",
    );
    both(
        &mut body,
        &mut want,
        b"\r\n------WebKitFormBoundaryX3sQ\r\n",
    );
    both(
        &mut body,
        &mut want,
        b"Content-Disposition: form-data; name=\"upload\"; filename=\"notes.txt\"\r\n\
          Content-Type: text/plain\r\n\r\n",
    );
    both(&mut body, &mut want, file);
    both(
        &mut body,
        &mut want,
        b"\r\n------WebKitFormBoundaryX3sQ--\r\nepilogue",
    );
    (body, want)
}

fn file() -> Vec<u8> {
    let mut file = b"see https://www.example.cn/ \r\n--not the boundary\r\n\x00\xff".to_vec();
    file.extend((0..=255u8).cycle().take(3000));
    file.extend_from_slice(b"example.cn\r\n------WebKitFormBoundaryX3s");
    file
}

fn run(chunks: &[&[u8]]) -> Vec<u8> {
    let p = requests();
    let kind = BodyKind::Multipart(Multipart::from_content_type(CONTENT_TYPE).unwrap());
    let got = deliver(&p, BodyStream::new(kind, None), chunks, Ending::LastChunk);
    assert_eq!(got.failure, None);
    got.body
}

#[test]
fn boundaries() {
    let cases: &[(&[u8], Option<&[u8]>)] = &[
        (b"multipart/form-data; boundary=abc", Some(b"abc")),
        (b"Multipart/Form-Data ; Boundary=\"a b:c\"", Some(b"a b:c")),
        (
            b"multipart/form-data; charset=utf-8; boundary=x-1",
            Some(b"x-1"),
        ),
        (b"multipart/mixed; boundary=abc", None),
        (b"multipart/form-data", None),
        (b"multipart/form-data; boundary=", None),
        (b"multipart/form-data; boundary=\"ends in space \"", None),
        (b"multipart/form-data; boundary=a\xffb", None),
    ];
    for (content_type, want) in cases {
        assert_eq!(
            boundary(content_type).as_deref(),
            *want,
            "{}",
            String::from_utf8_lossy(content_type)
        );
    }
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    assert_eq!(boundary(long.as_bytes()), None);
}

#[test]
fn which_parts_are_text() {
    let cases: &[(&str, bool)] = &[
        ("Content-Disposition: form-data; name=\"a\"", true),
        (
            "Content-Disposition: form-data; name=\"a\"\r\nContent-Type: text/plain; charset=utf-8",
            true,
        ),
        (
            "Content-Disposition: form-data; name=\"a\"\r\nContent-Type: application/vnd.x+json",
            true,
        ),
        (
            "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain",
            false,
        ),
        (
            "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''a.txt",
            false,
        ),
        (
            "content-disposition: form-data; name=\"f\"; FILENAME=\"\"",
            false,
        ),
        (
            "Content-Disposition: form-data; name=\"blob\"\r\nContent-Type: application/octet-stream",
            false,
        ),
        (
            "Content-Disposition: form-data; name=\"img\"\r\nContent-Type: image/png",
            false,
        ),
        // A field named "filename" is not a file.
        ("Content-Disposition: form-data; name=\"filename\"", true),
        ("", true),
    ];
    for (headers, want) in cases {
        assert_eq!(is_text_part(headers.as_bytes()), *want, "{headers}");
    }
}

#[test]
fn text_parts_are_rewritten_and_files_pass_byte_for_byte() {
    let (body, want) = form(&file());
    let got = run(&[&body]);
    assert!(
        got == want,
        "{}\n---\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn every_split_gives_the_same_body() {
    let (body, want) = form(b"a small file naming example.cn\r\n");
    for cut in 0..=body.len() {
        let got = run(&[&body[..cut], &body[cut..]]);
        assert!(
            got == want,
            "cut at {cut}: {}",
            String::from_utf8_lossy(&got)
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert!(run(&bytes) == want, "one-byte chunks");
    let (body, want) = form(&file());
    for size in [2, 3, 7, 64, 1000] {
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        assert!(run(&chunks) == want, "chunks of {size}");
    }
}

#[test]
fn malformed_bodies_pass_without_loss() {
    // No closing delimiter: the text part ends with the body.
    let body = b"------WebKitFormBoundaryX3sQ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhttps://example.cn";
    assert_eq!(
        run(&[body]),
        b"------WebKitFormBoundaryX3sQ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhttps://example.com"
    );
    // Not multipart at all: passes as preamble.
    let body = b"just some text about example.cn";
    assert_eq!(run(&[body]), body);
    // A header block without end, beyond the limit: the rest passes as it is.
    let mut body = b"------WebKitFormBoundaryX3sQ\r\nX: ".to_vec();
    body.extend(std::iter::repeat_n(b'a', MAX_HEADERS + 10));
    body.extend_from_slice(b" example.cn\r\n\r\nexample.cn");
    let chunks: Vec<&[u8]> = body.chunks(4096).collect();
    assert!(run(&chunks) == body);
    // A delimiter followed by garbage instead of a line break.
    let body = b"------WebKitFormBoundaryX3sQxx example.cn";
    assert_eq!(run(&[body]), body);
    // An empty body.
    assert_eq!(run(&[]), b"");
}

#[test]
fn random_forms_and_splits() {
    let mut rng = ferry_testkit::Rng(11);
    let pieces: &[&[u8]] = &[
        b"example.cn",
        b"www.example.cn",
        b"admin@example.cn",
        b"\r\n",
        b"--",
        b"\r\n------WebKitFormBoundaryX3sQ",
        b"\r\n------WebKitFormBoundaryX3sQ\r\n",
        b"\r\n\r\n",
        b"Content-Disposition: form-data; name=\"a\"",
        b"; filename=\"f\"",
        b"Content-Type: image/png",
        b"x",
        b" ",
        b"\xff",
    ];
    let p = requests();
    let multipart = Multipart::from_content_type(CONTENT_TYPE).unwrap();
    for round in 0..3000 {
        let mut body = b"------WebKitFormBoundaryX3sQ\r\n".to_vec();
        for _ in 0..rng.below(30) {
            body.extend_from_slice(pieces[rng.index(pieces.len())]);
        }
        let whole = deliver(
            &p,
            BodyStream::new(BodyKind::Multipart(multipart.clone()), None),
            &[&body],
            Ending::LastChunk,
        );
        let chunks = crate::testing::cut(&body, rng.below(256) as u8, 17);
        let split = deliver(
            &p,
            BodyStream::new(BodyKind::Multipart(multipart.clone()), None),
            &chunks,
            Ending::LastChunk,
        );
        assert!(
            split.body == whole.body,
            "round {round}: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
}
