//! Fixtures shared by the unit tests, the fuzz targets and the benchmarks: the domain pairs of
//! the README's example configuration. Not part of the filter's behaviour.

use crate::config::DomainPair;

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
