//! The storage engine through its library API, on a real O_DIRECT file:
//! random operations checked against a model (with crashes and clean stops
//! in the middle), and a read that races the overwrite of its segment.

mod store_support;
mod support;

use edgeslab::cache::key::CacheKey;
use edgeslab::cache::owner::{OwnerRouter, ReadFailure};
use edgeslab::cache::store::{FillMeta, Lookup};
use std::collections::HashMap;
use std::path::PathBuf;
use store_support::{open, prepare, run};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("edgeslab-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

fn body_of(key: u32, version: u32, len: usize) -> Vec<u8> {
    support::bytes(len, (key as u64) << 32 | version as u64)
}

fn key(k: u32) -> CacheKey {
    CacheKey::from_text(format!("http://test:80/object/{k}"))
}

async fn put(cache: &OwnerRouter, k: u32, body: &[u8]) {
    let meta = FillMeta {
        key: key(k).as_str().to_string(),
        hash: key(k).hash(),
        head: b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\n\r\n".to_vec(),
        born_ms: 0,
        expires_ms: u64::MAX / 2,
        declared_len: None,
        variant: None,
    };
    let fill = cache.fill(&key(k), meta, None).await;
    for piece in body.chunks(50_000) {
        fill.data(piece).await;
    }
    fill.finish(true).await;
}

/// The body stored for `k`, if it is a hit (None for a miss).
async fn get(cache: &OwnerRouter, k: u32) -> Option<Vec<u8>> {
    let Lookup::Found {
        loc,
        seq,
        bytes,
        buffered,
    } = cache.lookup(&key(k)).await
    else {
        return None;
    };
    let entry = cache
        .read_entry(&key(k), loc, seq, bytes, &buffered)
        .await
        .ok()?;
    if let Some(b) = entry.inline_body() {
        return Some(b.to_vec());
    }
    let (fill_id, chunks) = entry.chunks()?;
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let chunk = cache
            .read_chunk(&key(k), fill_id, i as u32, c, &buffered)
            .await
            .ok()?;
        out.extend_from_slice(chunk.data());
    }
    (out.len() as u64 == entry.body_len()).then_some(out)
}

#[test]
fn random_operations_match_a_model_across_crashes_and_clean_stops() {
    run(|| async {
        let dir = temp_dir("model");
        let path = dir.0.join("c.slab");
        let mut dev = prepare(&path);
        // Every version ever written per key: after a crash an older version
        // may come back, but never bytes that were not a whole version.
        let mut versions: HashMap<u32, Vec<Vec<u8>>> = HashMap::new();
        let mut latest: HashMap<u32, usize> = HashMap::new();
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (mut hits, mut checked) = (0, 0);
        let mut cache = open(&dev, 0).await;
        for round in 0..6 {
            for _ in 0..400 {
                let k = next(60) as u32;
                match next(10) {
                    0..=3 => {
                        let len = match next(10) {
                            0 => 1_500_000 + next(1_000_000) as usize, // several chunks
                            1..=3 => next(200_000) as usize,
                            _ => next(8_000) as usize,
                        };
                        let v = versions.entry(k).or_default();
                        let body = body_of(k, v.len() as u32, len);
                        v.push(body.clone());
                        latest.insert(k, v.len() - 1);
                        put(&cache, k, &body).await;
                    }
                    4 => {
                        cache.remove(&key(k)).await;
                        latest.remove(&k);
                    }
                    _ => {
                        let got = get(&cache, k).await;
                        checked += 1;
                        if let Some(got) = got {
                            hits += 1;
                            let idx = latest.get(&k).copied();
                            let which = versions
                                .get(&k)
                                .and_then(|v| v.iter().position(|b| *b == got));
                            assert!(
                                idx.is_some() && which == idx,
                                "round {round}: key {k} hit version {which:?} ({} bytes), latest is {idx:?}",
                                got.len()
                            );
                        }
                    }
                }
            }
            let ram = if round % 2 == 0 { 1 << 20 } else { 0 };
            if round % 2 == 0 {
                // A clean stop: everything indexed survives, unchanged.
                let mut indexed = Vec::new();
                for k in 0..60 {
                    if get(&cache, k).await.is_some() {
                        indexed.push(k);
                    }
                }
                cache.store().checkpoint().await.unwrap();
                drop(cache);
                drop(dev); // its lock: one holder of a device at a time
                dev = prepare(&path);
                assert!(!dev.fresh);
                cache = open(&dev, ram).await;
                for k in &indexed {
                    let got = get(&cache, *k)
                        .await
                        .expect("a checkpointed object is still a hit");
                    assert!(
                        got == versions[k][latest[k]],
                        "key {k} changed across a clean stop"
                    );
                }
            } else {
                // A crash: no checkpoint, the open segments are lost. Whatever
                // comes back must be a whole version that was written.
                drop(cache);
                drop(dev); // its lock: one holder of a device at a time
                dev = prepare(&path);
                cache = open(&dev, ram).await;
                let mut back = HashMap::new();
                for k in 0..60u32 {
                    if let Some(got) = get(&cache, k).await {
                        let which = versions
                            .get(&k)
                            .and_then(|v| v.iter().position(|b| *b == got));
                        assert!(
                            which.is_some(),
                            "after a crash, key {k} came back with bytes never written"
                        );
                        back.insert(k, which.unwrap());
                    }
                }
                latest = back;
            }
        }
        assert!(
            checked > 500 && hits > 100,
            "checked {checked}, hits {hits}"
        );
    });
}

#[test]
fn a_torn_segment_summary_falls_back_to_reading_the_segment() {
    run(|| async {
        let dir = temp_dir("summary");
        let path = dir.0.join("c.slab");
        let dev = prepare(&path);
        let cache = open(&dev, 0).await;
        let mut written = Vec::new();
        for k in 0..40u32 {
            let body = body_of(k, 0, 60_000 + k as usize * 1000);
            put(&cache, k, &body).await;
            written.push(body);
        }
        // The objects of the segment whose summary will be torn (slot 0, the
        // first written, long since on the device).
        let mut torn_keys = Vec::new();
        for k in 0..40u32 {
            if let Lookup::Found { loc, bytes, .. } = cache.lookup(&key(k)).await
                && loc.slot == 0
            {
                assert!(bytes.is_none(), "key {k} is on the device, not buffered");
                torn_keys.push(k);
            }
        }
        assert!(torn_keys.len() >= 5, "slot 0 holds {torn_keys:?}");
        // A crash: no checkpoint. Then the first segment's summary is torn.
        drop(cache);
        let geo = dev.geometry;
        let mut raw = std::fs::read(&path).unwrap();
        let tail = (geo.segment_offset(0, 0) + geo.segment_size - 40) as usize;
        raw[tail] ^= 0xFF;
        std::fs::write(&path, &raw).unwrap();
        drop(raw);
        drop(dev); // its lock: one holder of a device at a time
        let dev = prepare(&path);
        let cache = open(&dev, 0).await;
        // Every object of the torn segment comes back, byte for byte: its
        // entries were found by walking the segment.
        for &k in &torn_keys {
            let got = get(&cache, k).await;
            assert!(
                got.as_deref() == Some(&written[k as usize][..]),
                "key {k} of the torn segment did not come back intact"
            );
        }
        let mut hits = 0;
        for k in 0..40u32 {
            if let Some(got) = get(&cache, k).await {
                assert!(got == written[k as usize], "key {k} came back wrong");
                hits += 1;
            }
        }
        assert!(
            hits >= 20,
            "objects of the torn segment and the others came back: {hits}"
        );
    });
}

#[test]
fn a_read_that_races_the_overwrite_of_its_segment_is_a_miss() {
    run(|| async {
        let dir = temp_dir("race");
        let path = dir.0.join("c.slab");
        let dev = prepare(&path);
        let cache = open(&dev, 0).await;
        let first = body_of(1, 0, 100_000);
        put(&cache, 1, &first).await;
        // Push key 1's segment to the device.
        for k in 100..110 {
            put(&cache, k, &body_of(k, 0, 200_000)).await;
        }
        let Lookup::Found {
            loc, seq, bytes, ..
        } = cache.lookup(&key(1)).await
        else {
            panic!("key 1 should be indexed");
        };
        assert!(bytes.is_none(), "the entry is on the device now");
        // Churn until that segment slot is reused.
        for k in 200..400 {
            put(&cache, k, &body_of(k, 0, 200_000)).await;
        }
        let stale = cache.read_entry(&key(1), loc, seq, None, &[]).await;
        match stale {
            Ok(_) => panic!("a read of an overwritten segment returned an entry"),
            Err(f) => assert!(
                matches!(
                    f,
                    ReadFailure::Overwritten | ReadFailure::OtherKey | ReadFailure::Corrupt
                ),
                "{f:?}"
            ),
        }
    });
}
