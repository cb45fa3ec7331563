//! Token-counting throughput: `Tokenizers` (bpe-openai) beside raw `tiktoken-rs`, on one
//! thread, for English prose and for mixed-script text; plus `count_prompt` for a chat
//! request with a ~100-token prompt (the tokenization share of the stack's overhead).
//!
//! Run: `cargo bench -p llm-tower-layers --bench tokens -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_tower_core::{ChatRequest, Message, RequestBody};
use llm_tower_layers::token_count::{Heuristic, TokenCounter, Tokenizers};

const ENGLISH: &[&str] = &[
    "The history of the lighthouse is, in many ways, the history of coastal trade itself.",
    "Long before electric lamps and automated beacons, keepers climbed narrow stairs every evening to trim wicks and polish lenses.",
    "Their work was lonely and often dangerous; storms could cut off supply boats for weeks.",
    "Yet many keepers described the job as deeply satisfying.",
    "Today, historians use their logbooks to reconstruct climate patterns and shipping routes from the nineteenth century.",
    "Modern navigation relies on satellites rather than towers of stone, but lighthouses have not disappeared.",
    "\"It reminds you how small you are,\" one guide told me, \"and how much effort people once made to keep strangers safe.\"",
    "Software teams face a similar challenge when they maintain critical infrastructure.",
    "Nobody notices the systems that work, and everybody notices the ones that fail.",
    "Good engineers write tests, monitor latency, and document their decisions.",
    "They don't chase novelty for its own sake; they prefer boring, reliable tools.",
    "When something breaks at three o'clock in the morning, they're grateful for every alert and every runbook.",
    "Economists have long debated whether productivity gains from automation are shared broadly.",
    "The evidence is mixed, and some studies find that wages rise in industries that adopt new technology quickly.",
    "What seems clear is that education and training matter a great deal.",
    "Communities that invest in schools and apprenticeships recover faster from economic shocks.",
    "In 1869, the canal opened to traffic and shortened the voyage by roughly 7,000 kilometres.",
    "Please summarize the following report in three bullet points for an executive audience.",
];

const MIXED: &[&str] = &[
    "人工智能正在改变我们的生活方式，这项技术已经渗透到社会的各个角落。",
    "東京は世界で最も人口の多い都市の一つです。毎日何百万人もの人々が電車で通勤しています。",
    "서울은 대한민국의 수도이자 가장 큰 도시입니다.",
    "Москва является столицей России и одним из крупнейших городов мира.",
    "القاهرة هي عاصمة مصر وأكبر مدينة في العالم العربي.",
    "भारत एक विशाल देश है जिसमें अनेक भाषाएँ, धर्म और संस्कृतियाँ हैं।",
    "Great job team! 🎉🎉 Let's ship it 🚀 👨‍👩‍👧‍👦 family day 🏳️‍🌈 and 👍🏽 thanks ❤️",
    "La ville de Paris est célèbre pour ses musées, ses cafés et son architecture élégante.",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{v:?}\"); }",
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":256}",
    "The quick brown fox jumps over the lazy dog while 3.14159 and 2,718,281 are numbers.",
    "Ελληνικά: η γλώσσα έχει μακρά ιστορία.  עברית: שלום עולם.  ไทย: สวัสดีครับ",
];

/// About `bytes` bytes of text made of `sentences`, picked by a fixed LCG.
fn corpus(sentences: &[&str], bytes: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::with_capacity(bytes + 256);
    let mut in_paragraph = 0;
    while text.len() < bytes {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pick = usize::try_from(state >> 33).unwrap() % sentences.len();
        text.push_str(sentences[pick]);
        in_paragraph += 1;
        if in_paragraph == 5 {
            text.push_str("\n\n");
            in_paragraph = 0;
        } else {
            text.push(' ');
        }
    }
    text
}

fn throughput(c: &mut Criterion) {
    let tiktoken_o200k = tiktoken_rs::o200k_base().unwrap();
    let tiktoken_cl100k = tiktoken_rs::cl100k_base().unwrap();
    Tokenizers::warm_up();
    let ours = Tokenizers;
    for (name, text) in [
        ("english", corpus(ENGLISH, 100_000)),
        ("mixed", corpus(MIXED, 100_000)),
    ] {
        // Identical counts, checked once outside the timed loops.
        let o200k = ours.count_text("gpt-4o", &text);
        let cl100k = ours.count_text("gpt-4", &text);
        assert!(o200k.is_exact() && cl100k.is_exact());
        let tt_o200k = tiktoken_o200k.encode_ordinary(&text).len() as u64;
        let tt_cl100k = tiktoken_cl100k.encode_ordinary(&text).len() as u64;
        assert_eq!(o200k.tokens, tt_o200k, "o200k count differs on {name}");
        assert_eq!(cl100k.tokens, tt_cl100k, "cl100k count differs on {name}");
        println!(
            "{name}: {} bytes, o200k {} tokens, cl100k {} tokens, heuristic {}",
            text.len(),
            o200k.tokens,
            cl100k.tokens,
            Heuristic::estimate(&text)
        );

        let mut group = c.benchmark_group(format!("count_text/{name}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function("ours_o200k", |b| {
            b.iter(|| ours.count_text(black_box("gpt-4o"), black_box(&text)))
        });
        group.bench_function("tiktoken_o200k", |b| {
            b.iter(|| tiktoken_o200k.encode_ordinary(black_box(&text)).len())
        });
        group.bench_function("ours_cl100k", |b| {
            b.iter(|| ours.count_text(black_box("gpt-4"), black_box(&text)))
        });
        group.bench_function("tiktoken_cl100k", |b| {
            b.iter(|| tiktoken_cl100k.encode_ordinary(black_box(&text)).len())
        });
        group.bench_function("heuristic", |b| {
            b.iter(|| Heuristic::estimate(black_box(&text)))
        });
        group.finish();
    }
}

/// A chat request whose prompt is about 100 tokens with `o200k_base`.
fn chat_body(model: &str) -> RequestBody {
    RequestBody::Chat(ChatRequest::new(
        model,
        vec![
            Message::system(
                "You are a concise assistant for a logistics company. Answer in plain English, \
                 cite the order number when you mention an order, and never invent tracking data.",
            ),
            Message::user(
                "My order 48213 was supposed to arrive on Tuesday, but the tracking page has not \
                 changed since last week. Can you check what happened and tell me when I should \
                 expect the delivery? Thanks!",
            ),
        ],
    ))
}

fn prompt(c: &mut Criterion) {
    Tokenizers::warm_up();
    let ours = Tokenizers;
    let exact = chat_body("gpt-4o-mini");
    let estimated = chat_body("claude-sonnet-4-5");
    let count = ours.count_prompt(&exact);
    println!(
        "count_prompt: {} tokens ({:?}); heuristic {} tokens",
        count.tokens,
        count.source,
        ours.count_prompt(&estimated).tokens
    );
    let mut group = c.benchmark_group("count_prompt");
    group.bench_function("chat_100_tokens_o200k", |b| {
        b.iter(|| ours.count_prompt(black_box(&exact)))
    });
    group.bench_function("chat_100_tokens_heuristic", |b| {
        b.iter(|| ours.count_prompt(black_box(&estimated)))
    });
    group.finish();
}

criterion_group!(benches, throughput, prompt);
criterion_main!(benches);
