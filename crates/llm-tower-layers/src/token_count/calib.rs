#![allow(clippy::unwrap_used, missing_docs)]
#[path = "calib_corpus.rs"]
mod corpus;
#[test]
fn calib() {
    use super::heuristic::estimate_tokens;
    use super::tokenizers::Encoding;
    for (name, t) in [("en", corpus::ENGLISH), ("code", corpus::CODE), ("json", corpus::JSON), ("zh", corpus::CHINESE), ("ja", corpus::JAPANESE), ("ko", corpus::KOREAN), ("ru", corpus::RUSSIAN), ("ar", corpus::ARABIC), ("hi", corpus::HINDI), ("emoji", corpus::EMOJI), ("fr", corpus::FRENCH)] {
        let o = Encoding::O200kBase.count(t);
        let c = Encoding::Cl100kBase.count(t);
        let h = estimate_tokens(t);
        println!("{name:6} chars {:5} o200k {o:5} cl100k {c:5} heur {h:5} ratio {:.3}", t.chars().count(), h as f64 / o as f64);
    }
}
