//! Variants through the library API, on a real O_DIRECT file: a variant is
//! reachable only through its URL's marker (so one whose marker is missing
//! is never served), a marker written under another epoch or a removed URL
//! hides the variants stored before, for good, and a marker and its variants
//! come back after a clean stop.

mod store_support;
mod support;

use edgeslab::cache::key::CacheKey;
use edgeslab::cache::owner::OwnerRouter;
use edgeslab::cache::store::FillMeta;
use edgeslab::cache::variants::{Found, Selecting};
use edgeslab::http::Headers;
use store_support::{open, prepare, run};

fn accept(coding: &str) -> Headers {
    let mut h = Headers::new();
    h.push("Accept-Encoding", coding);
    h
}

fn url() -> CacheKey {
    CacheKey::from_text("http://test:80/varies".to_string())
}

/// Stores `body` as the response to `req`, as the fill path does: where
/// `selecting` (after its lookup) says. `drop_marker` leaves the URL's
/// marker unwritten, as a crash that lost it would.
async fn store(
    cache: &OwnerRouter,
    selecting: &Selecting,
    req: &Headers,
    body: &[u8],
    drop_marker: bool,
) {
    let mut resp = Headers::new();
    resp.push("Vary", "Accept-Encoding");
    let mut target = selecting.plan_fill(&resp, req).expect("storable");
    if let Some(v) = target.variant.as_mut()
        && drop_marker
    {
        v.write_marker = false;
    }
    let meta = FillMeta {
        key: target.key.as_str().to_string(),
        hash: target.key.hash(),
        head: b"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n\r\n".to_vec(),
        born_ms: 0,
        expires_ms: u64::MAX / 2,
        declared_len: None,
        variant: target.variant,
    };
    let fill = cache.fill(&target.key, meta, None).await;
    fill.data(body).await;
    fill.finish(true).await;
}

/// Looks `req` up as the hit path does; the body found, if any, and the
/// selection state for a fill.
async fn find(cache: &OwnerRouter, req: &Headers) -> (Option<Vec<u8>>, Selecting) {
    let mut selecting = Selecting::new(url());
    let body = match selecting.find(cache, req).await {
        Found::Entry { entry, .. } => Some(entry.inline_body().expect("small").to_vec()),
        Found::Missing { .. } => None,
    };
    (body, selecting)
}

#[test]
fn a_variant_is_reachable_only_through_its_url_s_marker() {
    run(|| async {
        let dir = support::TempDir::new("vary-store-marker");
        let dev = prepare(&dir.path().join("c.slab"));
        let cache = open(&dev, 1 << 20).await;
        let (gzip, br) = (accept("gzip"), accept("br"));

        // A variant stored without its marker is never found.
        let (none, selecting) = find(&cache, &gzip).await;
        assert_eq!(none, None);
        assert!(!selecting.is_variant());
        store(&cache, &selecting, &gzip, b"gzip 1", true).await;
        assert_eq!(find(&cache, &gzip).await.0, None);

        // The next fill writes a marker with a new epoch: the variant stored
        // before it stays out of reach.
        store(&cache, &find(&cache, &br).await.1, &br, b"br 1", false).await;
        assert_eq!(find(&cache, &br).await.0.as_deref(), Some(&b"br 1"[..]));
        let (none, selecting) = find(&cache, &gzip).await;
        assert_eq!(none, None);
        assert!(selecting.is_variant(), "the marker is there: a vary-miss");

        // Filled under that marker, it is found, and so is its sibling.
        store(&cache, &selecting, &gzip, b"gzip 2", false).await;
        assert_eq!(find(&cache, &gzip).await.0.as_deref(), Some(&b"gzip 2"[..]));
        assert_eq!(find(&cache, &br).await.0.as_deref(), Some(&b"br 1"[..]));
        // Equivalent requests select the same variant.
        let (same, _) = find(&cache, &accept("GZIP;q=0.5, br;q=0")).await;
        assert_eq!(same.as_deref(), Some(&b"gzip 2"[..]));

        // Across a clean stop, marker and variants are still there.
        cache.store().checkpoint().await.unwrap();
        drop(cache);
        drop(dev); // its lock: one holder of a device at a time
        let dev = prepare(&dir.path().join("c.slab"));
        let cache = open(&dev, 1 << 20).await;
        assert_eq!(find(&cache, &gzip).await.0.as_deref(), Some(&b"gzip 2"[..]));
        assert_eq!(find(&cache, &br).await.0.as_deref(), Some(&b"br 1"[..]));
    });
}

#[test]
fn removing_a_url_hides_its_variants_for_good() {
    run(|| async {
        let dir = support::TempDir::new("vary-store-remove");
        let dev = prepare(&dir.path().join("c.slab"));
        let cache = open(&dev, 1 << 20).await;
        let (gzip, br) = (accept("gzip"), accept("br"));
        store(
            &cache,
            &find(&cache, &gzip).await.1,
            &gzip,
            b"gzip 1",
            false,
        )
        .await;
        store(&cache, &find(&cache, &br).await.1, &br, b"br 1", false).await;
        assert!(find(&cache, &gzip).await.0.is_some());
        assert!(find(&cache, &br).await.0.is_some());

        // Removing the URL removes its marker: no variant is served.
        cache.remove(&url()).await;
        assert_eq!(find(&cache, &gzip).await.0, None);
        assert_eq!(find(&cache, &br).await.0, None);
        // A later fill writes a marker with a new epoch, which does not
        // bring the removed variants back.
        store(
            &cache,
            &find(&cache, &gzip).await.1,
            &gzip,
            b"gzip 2",
            false,
        )
        .await;
        assert_eq!(find(&cache, &gzip).await.0.as_deref(), Some(&b"gzip 2"[..]));
        assert_eq!(find(&cache, &br).await.0, None);
    });
}
