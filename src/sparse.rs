//! # BM25 sparse vectors
//!
//! In: a chunk's text (the document side, [`Analyzer::document`]) or a search query (the
//! query side, [`Analyzer::query`]). Out: a [`SparseVector`], term index → weight, with
//! sorted, unique indices, ready to store beside the chunk's dense vector in a sparse vector
//! whose modifier is `Idf`: the collection supplies the inverse document frequency at query
//! time, so a document's weights are its BM25 term-frequency parts only, and a query's are
//! all 1.0.
//!
//! ## Word terms: Qdrant's own analyzer
//!
//! Words go through Qdrant's BM25 from `qdrant-edge`, which we already depend on
//! ([`EdgeBm25`] with its English defaults): the word tokenizer (runs of alphanumeric
//! characters), lowercasing, the English stop words, the Snowball English stemmer
//! (`qdrant-rust-stemmers`, maintained), k1 1.2, b 0.75, an average length of 256 tokens,
//! and murmur3 (seed 0) of each term as `|i32|` for its index. This is the tokenizer, stop
//! word filter and stemmer the Qdrant server's `qdrant/bm25` inference runs, and the same
//! recipe (NLTK's 179 English stop words, Snowball stemmer, murmur3 indices, k1, b, average
//! length) as fastembed's `Qdrant/bm25`, whose tokenizer differs only at the edges (it keeps
//! `_` inside a word); so our vectors can be queried with Qdrant's tooling and theirs with
//! ours. Hashing makes the term → index map stable across runs and machines, with no
//! vocabulary to build, store or share.
//!
//! ## Identifier terms: ours, added beside them
//!
//! The word tokenizer cuts `snake_case`, `--no-clobber`, `os.path.join` or `XR-1200` into
//! their parts and drops the `-` of `-C`, so those could be found only as loose words. Each
//! identifier in the text is therefore also added whole, as one more term: lowercased,
//! neither stemmed nor stop-word filtered, indexed by the same [`term_index`], and weighted
//! by the same BM25 formula. An identifier is a piece of the text between whitespace,
//! brackets, quotes, `,` `;` `=` `/` `\` `|`, trimmed of other punctuation around it but for
//! a leading `-` and `_`, that holds `_`, `-`, `.` or `::` between alphanumerics (`snake_case`,
//! `XR-1200`, `libfoo.so.1`, `std::fs::File`, also `well-known` and `3.14`), or is one or two
//! `-` then a letter (`-C`, `--force`), or mixes letters and digits (`E1234`, `x86`); at
//! most 64 characters. Its parts stay in the vector as ordinary words, so `clobber` still
//! finds `--no-clobber`.
//!
//! Two choices there:
//!
//! - Document length, for the identifiers' BM25 weights: the number of word tokens, the
//!   runs of alphanumeric characters, stop words included. Qdrant counts the same runs but
//!   after dropping stop words, and does not tell us its count. Ours is about twice as
//!   large in English prose, so an identifier seen once weighs about 14 % less than a word
//!   seen once in the same chunk (1,000-character chunks of the GPL). It is the same for
//!   every chunk and every run, and an identifier already scores through its parts too.
//! - Merging: when an identifier's index is already in the word terms (`E1234` is also a
//!   word token, `e1234`; or the rare murmur3 collision), the larger weight is kept, not the
//!   sum, so a term counted twice by the two passes is not weighted twice. Queries dedupe
//!   the same way, every term at 1.0.
//!
//! A change to any of this changes the vectors: bump [`ANALYZER_VERSION`], which is stored
//! with them, so that vectors of two analyzers are never mixed in one collection.

use std::collections::HashMap;

use murmur3_32::Murmur3;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::TokenizerType;

/// The analyzer behind the vectors this module makes; stored wherever they are, so that a
/// change of tokenizer, stop words, stemmer, parameters or identifier rules is detectable.
pub const ANALYZER_VERSION: &str = "bm25-en-1";

/// Identifiers longer than this many characters (base64 blobs, minified code) are not added
/// whole; 64 keeps a SHA-256 in hex.
const MAX_IDENTIFIER_CHARS: usize = 64;

/// Characters that end an identifier candidate besides whitespace: brackets, quotes and
/// list punctuation, and `=` `/` `\` `|` so that `--color=auto`, `src/lib.rs` and
/// `a|b` give `--color`, `lib.rs` and `a`, `b`.
const DELIMITERS: &[char] = &[',', ';', '(', ')', '[', ']', '{', '}', '<', '>', '"', '\'', '`', '=', '/', '\\', '|'];

/// A sparse vector: `indices[i]` has weight `values[i]`; indices sorted and unique. Ours,
/// so that the rest of the crate does not depend on `qdrant-edge`'s types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// The number of terms with a weight.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no term has a weight (an empty or all-stop-word text).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The weight at `index`, if the vector has one there.
    pub fn weight(&self, index: u32) -> Option<f32> {
        self.indices.binary_search(&index).ok().map(|position| self.values[position])
    }

    /// Sorted by index, a repeated index keeping its largest weight.
    fn from_pairs(mut pairs: Vec<(u32, f32)>) -> Self {
        pairs.sort_unstable_by_key(|&(index, _)| index);
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.max(later.1);
            }
            same
        });
        let (indices, values) = pairs.into_iter().unzip();
        Self { indices, values }
    }
}

/// The index of a term: murmur3 32-bit, seed 0, of its UTF-8 bytes, as `|i32|`; Qdrant's
/// BM25 term ids. For a word that is its stemmed, lowercased form (`run` for `running`).
pub fn term_index(term: &str) -> u32 {
    (Murmur3::hash(0, term.as_bytes()) as i32).unsigned_abs()
}

/// Text → BM25 sparse vectors, English. Build it once and share it (`&` or `Arc`) between
/// threads: it is `Send + Sync` and its methods take `&self`.
#[derive(Debug)]
pub struct Analyzer {
    bm25: EdgeBm25,
    k1: f64,
    b: f64,
    avg_len: f64,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::english()
    }
}

impl Analyzer {
    /// Qdrant's English BM25: word tokenizer, lowercase, English stop words, Snowball
    /// English stemmer, k1 1.2, b 0.75, average length 256.
    pub fn english() -> Self {
        // Spelled out rather than left to qdrant-edge's defaults, so that a change of those
        // cannot change our vectors unnoticed; stop words and stemmer follow the language.
        let config = EdgeBm25Config {
            tokenizer: TokenizerType::Word,
            language: Some("english".to_string()),
            lowercase: Some(true),
            ascii_folding: Some(false),
            ..EdgeBm25Config::default()
        };
        let (k1, b, avg_len) = (config.k.into_inner(), config.b.into_inner(), config.avg_len.into_inner());
        let bm25 = EdgeBm25::new(config).expect("qdrant-edge's default English BM25 configuration is valid");
        Self { bm25, k1, b, avg_len }
    }

    /// A chunk's text → its document vector: each word term and each identifier with its
    /// BM25 term-frequency weight.
    pub fn document(&self, text: &str) -> SparseVector {
        let words = self.bm25.embed_document(text);
        let mut pairs: Vec<(u32, f32)> = words.indices.into_iter().zip(words.values).collect();

        // Counted by index: two identifiers whose hashes collide count as one term, as two
        // colliding words do in Qdrant's own vectors.
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for identifier in identifiers(text) {
            *counts.entry(term_index(&identifier)).or_insert(0) += 1;
        }
        if !counts.is_empty() {
            let length = word_token_count(text) as f64;
            pairs.extend(counts.into_iter().map(|(index, count)| (index, self.tf_weight(count, length))));
        }
        SparseVector::from_pairs(pairs)
    }

    /// A query → its query vector: each distinct word term and identifier at 1.0, like
    /// Qdrant's `embed_query`; the collection's `Idf` modifier does the rest.
    pub fn query(&self, text: &str) -> SparseVector {
        let words = self.bm25.embed_query(text);
        let identifiers = identifiers(text).map(|identifier| (term_index(&identifier), 1.0));
        SparseVector::from_pairs(words.indices.into_iter().zip(words.values).chain(identifiers).collect())
    }

    /// BM25's term-frequency part, as Qdrant computes it:
    /// `tf (k1 + 1) / (tf + k1 (1 - b + b length / avg_len))`.
    fn tf_weight(&self, count: u32, length: f64) -> f32 {
        let tf = f64::from(count);
        let norm = self.k1.mul_add(1.0 - self.b + self.b * length / self.avg_len, tf);
        (tf * (self.k1 + 1.0) / norm) as f32
    }
}

/// The document length the identifiers' weights use: the runs of alphanumeric characters,
/// which are the word tokenizer's tokens before stop words are dropped.
fn word_token_count(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric()).filter(|token| !token.is_empty()).count()
}

/// The identifiers in `text`, lowercased, in order, repeats included.
///
/// Candidates are the pieces between whitespace and [`DELIMITERS`], trimmed of punctuation
/// around them (`.` `:` `!` `?` `*` and the like) except a leading `-` and `_`, and a
/// trailing `_`. A candidate of at most [`MAX_IDENTIFIER_CHARS`] is an identifier when
/// - it holds `_`, `-`, `.` or `::` between word characters (alphanumerics or `_`):
///   `snake_case`, `__init__`, `XR-1200`, `os.path.join`, `libfoo.so.1`, `std::fs::File`,
///   also `well-known` and `3.14`; or
/// - it is one or two `-` and then a letter: `-C`, `--force`, `--no-clobber`; or
/// - it mixes letters and digits: `E1234`, `x86`, `utf8`.
fn identifiers(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| c.is_whitespace() || DELIMITERS.contains(&c))
        .map(|candidate| {
            candidate
                .trim_start_matches(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '_'))
        })
        .filter(|candidate| is_identifier(candidate))
        .map(str::to_lowercase)
}

/// Whether a trimmed candidate is an identifier; see [`identifiers`].
fn is_identifier(candidate: &str) -> bool {
    if candidate.is_empty() || candidate.chars().nth(MAX_IDENTIFIER_CHARS).is_some() {
        return false;
    }
    let body = candidate.trim_start_matches('-');
    let dashes = candidate.len() - body.len();
    if (1..=2).contains(&dashes) && body.starts_with(char::is_alphabetic) {
        return true;
    }
    if !candidate.chars().any(char::is_alphanumeric) {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let word_before = |i: usize| candidate[..i].chars().next_back().is_some_and(is_word);
    let word_after = |i: usize| candidate[i..].chars().next().is_some_and(is_word);
    let inner_separator = candidate.char_indices().any(|(i, c)| match c {
        '_' | '-' | '.' => word_before(i) && word_after(i + 1),
        ':' => candidate[i..].starts_with("::") && word_before(i) && word_after(i + 2),
        _ => false,
    });
    inner_separator || (candidate.chars().any(char::is_alphabetic) && candidate.chars().any(char::is_numeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector has a weight at `term`'s index.
    fn has(vector: &SparseVector, term: &str) -> bool {
        vector.weight(term_index(term)).is_some()
    }

    fn weight_of(vector: &SparseVector, term: &str) -> f32 {
        vector.weight(term_index(term)).unwrap_or_else(|| panic!("no weight for {term:?} in {vector:?}"))
    }

    fn assert_sorted_unique(vector: &SparseVector) {
        assert_eq!(vector.indices.len(), vector.values.len());
        assert!(vector.indices.windows(2).all(|pair| pair[0] < pair[1]), "not sorted and unique: {vector:?}");
        assert!(vector.values.iter().all(|value| value.is_finite() && *value > 0.0), "{vector:?}");
    }

    #[test]
    fn the_analyzer_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Analyzer>();
    }

    #[test]
    fn term_indices_are_pinned_murmur3_values() {
        // murmur3_32("hello", seed 0) = 0x248bfa47, the published reference value.
        assert_eq!(term_index("hello"), 613_153_351);
        // murmur3_32("bee", seed 0) = 0xb21c1430, negative as an i32: the index is its absolute value.
        assert_eq!(term_index("bee"), 1_306_793_680);
        let analyzer = Analyzer::english();
        assert_eq!(analyzer.document("Bee").indices, vec![1_306_793_680]);
        assert_eq!(analyzer.query("bee").indices, vec![1_306_793_680]);
    }

    #[test]
    fn parameters_are_qdrants_defaults() {
        let analyzer = Analyzer::english();
        assert_eq!((analyzer.k1, analyzer.b, analyzer.avg_len), (1.2, 0.75, 256.0));
    }

    #[test]
    fn words_are_stemmed() {
        let analyzer = Analyzer::english();
        let running = analyzer.document("running");
        assert_eq!(running.indices, vec![term_index("run")]);
        assert_eq!(analyzer.document("runs").indices, running.indices);
        assert_eq!(analyzer.query("Runs").indices, running.indices);
    }

    #[test]
    fn stop_words_are_dropped() {
        let analyzer = Analyzer::english();
        assert!(analyzer.query("the").is_empty());
        let document = analyzer.document("The cat and the hat");
        assert!(!has(&document, "the") && !has(&document, "and"));
        assert_eq!(document.indices.len(), 2);
        assert!(has(&document, "cat") && has(&document, "hat"));
    }

    #[test]
    fn words_alone_match_qdrants_own_vectors_exactly() {
        let analyzer = Analyzer::english();
        let qdrant = EdgeBm25::new(EdgeBm25Config::default()).unwrap();
        let text = "Permission is granted to copy and distribute verbatim copies of this license document, \
                    but changing it is not allowed. The licenses for most software are designed to take away \
                    your freedom to share and change it.";
        let ours = analyzer.document(text);
        let theirs = qdrant.embed_document(text);
        assert_eq!((ours.indices, ours.values), (theirs.indices, theirs.values));
        let ours = analyzer.query(text);
        let theirs = qdrant.embed_query(text);
        assert_eq!((ours.indices, ours.values), (theirs.indices, theirs.values));
    }

    #[test]
    fn identifiers_are_terms_whole_and_in_parts() {
        let analyzer = Analyzer::english();
        let text = "Running `cp --no-clobber -C src/` (see os.path.join, snake_case and libfoo.so.1.) \
                    after error E1234 on the XR-1200; std::fs::read_to_string too.";
        for vector in [analyzer.document(text), analyzer.query(text)] {
            for whole in [
                "--no-clobber",
                "-c",
                "os.path.join",
                "snake_case",
                "libfoo.so.1",
                "e1234",
                "xr-1200",
                "std::fs::read_to_string",
            ] {
                assert!(has(&vector, whole), "{whole:?} missing whole");
            }
            for part in ["clobber", "path", "join", "snake", "case", "libfoo", "e1234", "xr", "1200", "read", "string"]
            {
                assert!(has(&vector, part), "{part:?} missing as a part");
            }
            // Plain words stay only in their stemmed form, and punctuation is trimmed.
            assert!(has(&vector, "run") && !has(&vector, "running") && !has(&vector, "libfoo.so.1."));
            assert_sorted_unique(&vector);
        }
    }

    #[test]
    fn what_counts_as_an_identifier() {
        let found: Vec<String> = identifiers(
            "Use --color=auto, -v and --; see \"src/lib.rs\", __init__, x86 and e.g. 3.14 \
             but not -5, foo-, _, 42 or plain words.",
        )
        .collect();
        assert_eq!(found, ["--color", "-v", "lib.rs", "__init__", "x86", "e.g", "3.14"]);
        let long = "a_".repeat(40);
        assert_eq!(identifiers(&long).count(), 0);
    }

    #[test]
    fn a_term_in_both_passes_keeps_the_larger_weight_not_the_sum() {
        let analyzer = Analyzer::english();
        let qdrant = EdgeBm25::new(EdgeBm25Config::default()).unwrap();
        // `e1234` is a word token (length 1 for Qdrant, "the" dropped) and an identifier
        // (length 2 for us, so a smaller weight): one index, with Qdrant's weight.
        let text = "the E1234";
        let document = analyzer.document(text);
        assert_eq!(document.indices, vec![term_index("e1234")]);
        assert_eq!(document.values, qdrant.embed_document(text).values);
        assert!(analyzer.tf_weight(1, 2.0) < document.values[0]);
        assert_eq!(analyzer.query("E1234 e1234 E1234").values, vec![1.0]);
    }

    #[test]
    fn identifier_weights_follow_the_bm25_formula() {
        let analyzer = Analyzer::english();
        // Two word tokens, `force` and `quiet`; `--force` counted twice.
        let document = analyzer.document("--force --force --quiet");
        let expected_twice = 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 3.0 / 256.0));
        let expected_once = 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 3.0 / 256.0));
        assert!((f64::from(weight_of(&document, "--force")) - expected_twice).abs() < 1e-6);
        assert!((f64::from(weight_of(&document, "--quiet")) - expected_once).abs() < 1e-6);
    }

    #[test]
    fn repeats_weigh_more_but_saturate() {
        let analyzer = Analyzer::english();
        // Documents of the same length, with the term 1, 2, 4 and 16 times.
        let filler =
            "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa";
        let filler: Vec<&str> = filler.split(' ').collect();
        let with = |term: &str, times: usize| {
            let words: Vec<&str> = (0..16).map(|i| if i < times { term } else { filler[i] }).collect();
            words.join(" ")
        };
        for (term, key) in [("apple", "appl"), ("--dry-run", "--dry-run")] {
            let weights: Vec<f32> =
                [1, 2, 4, 16].iter().map(|&times| weight_of(&analyzer.document(&with(term, times)), key)).collect();
            assert!(weights.windows(2).all(|pair| pair[0] < pair[1]), "{term}: {weights:?}");
            // Each doubling adds less, and no count reaches k1 + 1.
            assert!(weights[1] - weights[0] > weights[2] - weights[1], "{term}: {weights:?}");
            assert!(weights[3] < 2.2, "{term}: {weights:?}");
        }
    }

    #[test]
    fn query_terms_weigh_one() {
        let analyzer = Analyzer::english();
        let query = analyzer.query("running runs ran --no-clobber snake_case snake_case E1234");
        assert!(query.values.iter().all(|&value| value == 1.0), "{query:?}");
        // run, ran, --no-clobber, clobber, snake_case, snake, case, e1234 ("no" is a stop word).
        assert_eq!(query.len(), 8, "{query:?}");
        assert_sorted_unique(&query);
    }

    #[test]
    fn empty_text_gives_an_empty_vector() {
        let analyzer = Analyzer::english();
        for text in ["", "   ", "the of and", "-- ... ;"] {
            assert_eq!(analyzer.document(text), SparseVector::default(), "{text:?}");
            assert!(analyzer.query(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn output_size_follows_the_vocabulary_not_the_length() {
        // Performance sanity: 200 KB of one paragraph, repeated, and a 100 KB token with no
        // space, give vectors no larger than the paragraph's vocabulary.
        let analyzer = Analyzer::english();
        let paragraph = "The GNU General Public License is a free, copyleft license for software and other \
                         kinds of works; see os.path.join and --no-clobber, error E1234.\n";
        let once = analyzer.document(paragraph);
        let many = analyzer.document(&paragraph.repeat(200_000 / paragraph.len()));
        assert_eq!(many.indices, once.indices);
        assert!(many.values.iter().zip(&once.values).all(|(many, once)| many < &2.2 && once < &2.2));
        let blob = "ab1_".repeat(25_000);
        assert_eq!(analyzer.document(&blob).indices, vec![term_index("ab1")]);
    }

    /// Throughput of `document()` on about 1 MB of English prose in chunks of about 1,000
    /// characters. Prints, asserts nothing: `cargo test --release --lib sparse -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn document_throughput() {
        let Ok(license) = std::fs::read_to_string("/usr/share/common-licenses/GPL-3") else {
            eprintln!("no /usr/share/common-licenses/GPL-3; skipped");
            return;
        };
        let text = license.repeat((1 << 20) / license.len() + 1);
        let mut chunks = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut end = rest.len().min(1000);
            while !rest.is_char_boundary(end) {
                end += 1;
            }
            let (chunk, tail) = rest.split_at(end);
            chunks.push(chunk);
            rest = tail;
        }
        let analyzer = Analyzer::english();
        let megabytes = text.len() as f64 / 1e6;
        let started = std::time::Instant::now();
        let terms: usize = chunks.iter().map(|chunk| analyzer.document(chunk).len()).sum();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "document(): {megabytes:.2} MB in {} chunks, {seconds:.3} s, {:.1} MB/s, {:.1} terms a chunk",
            chunks.len(),
            megabytes / seconds,
            terms as f64 / chunks.len() as f64
        );
        // Qdrant's word terms alone, for the share the identifiers add.
        let started = std::time::Instant::now();
        let terms: usize = chunks.iter().map(|chunk| analyzer.bm25.embed_document(chunk).indices.len()).sum();
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "EdgeBm25::embed_document alone: {seconds:.3} s, {:.1} MB/s, {:.1} terms a chunk",
            megabytes / seconds,
            terms as f64 / chunks.len() as f64
        );
    }
}
