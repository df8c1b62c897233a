//! Fixtures shared by the unit tests, the fuzz targets and the benchmarks: the domain pairs of
//! the README's example configuration, and [`deliver`], Envoy's side of a rewritten body
//! simulated (chunks handed over, plans carried out, the body ended with or without trailers).
//! Not part of the filter's behaviour.

use crate::domain::DomainPair;

/// `example.com -> example.cn` and `examplecdn.net -> cdn.example.cn`, both with subdomains.
#[doc(hidden)]
pub fn example_pairs() -> Vec<DomainPair> {
    vec![
        DomainPair {
            origin: "example.com".into(),
            mirror: "example.cn".into(),
            subdomains: true,
        },
        DomainPair {
            origin: "examplecdn.net".into(),
            mirror: "cdn.example.cn".into(),
            subdomains: true,
        },
    ]
}

/// The configuration of the fuzz targets: `example.com -> example.cn` with subdomains, and a
/// pair of short names (`a.io -> b.io`) whose replacement is as long as the name.
#[doc(hidden)]
pub fn fuzz_config() -> crate::config::Config {
    crate::config::Config::from_json(
        br#"{"domains": [{"origin": "example.com", "mirror": "example.cn", "subdomains": true},
                         {"origin": "a.io", "mirror": "b.io"}]}"#,
    )
    .expect("a valid configuration")
}

/// How a simulated Envoy ends a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The last chunk carries `end_of_stream`.
    LastChunk,
    /// An empty chunk with `end_of_stream` follows the last one (an HTTP/2 empty DATA frame
    /// with END_STREAM; Envoy's HTTP/1 codec at the end of a chunked body).
    EmptyChunk,
    /// Trailers follow the last chunk: no chunk sees `end_of_stream`.
    Trailers,
}

/// What the client of a [`deliver`] run received.
#[derive(Debug)]
pub struct Delivered {
    /// The bytes that reached the client, in order.
    pub body: Vec<u8>,
    /// Why the stream was reset, if it was (the client then saw an error after `body`).
    pub failure: Option<crate::stream::Failure>,
    pub stats: crate::stream::BodyStats,
}

/// Drives a [`BodyStream`](crate::stream::BodyStream) as Envoy does with a filter that never
/// pauses: every chunk is handed over once, its plan is carried out (kept, replaced, or the
/// stream reset), and the body ends as `ending` says. Checks the stream's bound on the bytes
/// it carries after every chunk.
pub fn deliver(
    pipeline: &crate::body::BodyRewriter,
    mut stream: crate::stream::BodyStream,
    chunks: &[&[u8]],
    ending: Ending,
) -> Delivered {
    use crate::stream::Plan;
    let mut body = Vec::new();
    let mut failure = None;
    let count = chunks.len();
    let empty: &[u8] = &[];
    let extra = (ending == Ending::EmptyChunk || count == 0) && ending != Ending::Trailers;
    let all = chunks.iter().copied().chain(extra.then_some(empty));
    let total = count + usize::from(extra);
    for (i, chunk) in all.enumerate() {
        let end = ending != Ending::Trailers && i + 1 == total;
        match stream.on_chunk(pipeline, chunk, end) {
            Plan::Keep => body.extend_from_slice(chunk),
            Plan::Replace(bytes) => body.extend_from_slice(bytes),
            Plan::Fail(f) => {
                failure = Some(f);
                break;
            }
        }
        assert!(
            stream.held() <= stream.max_held(pipeline),
            "carried {} bytes, more than the bound {}",
            stream.held(),
            stream.max_held(pipeline)
        );
        stream.shrink();
        let bound = 3 * crate::stream::SCRATCH_KEEP.max(stream.max_held(pipeline));
        assert!(
            stream.retained() <= bound,
            "keeps {} bytes between chunks, more than {bound}",
            stream.retained()
        );
    }
    if failure.is_none() && ending == Ending::Trailers {
        failure = stream.on_trailers().err();
    }
    Delivered {
        body,
        failure,
        stats: stream.stats(),
    }
}

/// `body` cut into chunks whose lengths (1 to `max`) follow the bits of `seed` as they rotate:
/// how the fuzz targets turn one input byte into a chunking.
pub fn cut(body: &[u8], seed: u8, max: u32) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = body;
    let mut i = 0u32;
    while !rest.is_empty() {
        let len = ((u32::from(seed).rotate_left(i) % max.max(1)) as usize + 1).min(rest.len());
        chunks.push(&rest[..len]);
        rest = &rest[len..];
        i += 1;
    }
    chunks
}
