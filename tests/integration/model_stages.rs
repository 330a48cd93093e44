//! The chunk and embed stages on their own, with the real tokenizer and the real model.

use ingest::chunk::{count_tokens, Chunker, SPECIAL_TOKENS};
use ingest::embed::{Batching, Embedder};
use ingest::extract::{Anchor, Document, Origin, Place};
use ingest::model::ModelInfo;

fn model() -> ModelInfo {
    ModelInfo::load(None).expect("the model is installed (scripts/setup.sh)")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn chunks_never_exceed_the_token_budget_and_overlap() {
    let model = model();
    assert_eq!((model.dim, model.max_sequence), (384, 256));
    let chunker = Chunker::new(&model.tokenizer().unwrap(), 40, 20, model.max_sequence).unwrap();
    let sentences: Vec<String> =
        (0..60).map(|i| format!("Sentence number {i} talks about topic {} in some detail.", i % 7)).collect();
    let text = sentences.join(" ");
    let chunks = chunker.chunk(&Document::plain(text.clone()));
    assert!(chunks.len() > 5, "{}", chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index as usize, i);
        let encoding = model.tokenizer().unwrap().encode(chunk.content.as_str(), false).unwrap();
        // Count real tokens only: the shipped tokenizer.json pads.
        let tokens: u32 = encoding.get_attention_mask().iter().sum();
        assert!(tokens <= 40, "chunk {i} has {tokens} tokens");
        assert_eq!(chunk.tokens, tokens as usize + SPECIAL_TOKENS, "chunk {i}'s token count");
        assert_eq!(chunk.content_hash, ingest::hash::sha256_hex(chunk.content.as_bytes()));
        assert!(text.contains(&chunk.content));
    }
    // Neighbours overlap: each chunk starts before the previous one ends.
    let starts: Vec<usize> = chunks.iter().map(|c| text.find(&c.content).unwrap()).collect();
    for i in 1..chunks.len() {
        assert!(starts[i] < starts[i - 1] + chunks[i - 1].content.len(), "no overlap after chunk {}", i - 1);
    }

    let markdown = "# Title\n\nFirst paragraph.\n\n## Section\n\nSecond paragraph.";
    let md_chunks = chunker.chunk(&Document { text: markdown.into(), is_markdown: true, ..Document::default() });
    assert_eq!(md_chunks.len(), 1, "a short markdown document is one chunk");

    let error = Chunker::new(&model.tokenizer().unwrap(), 255, 0, model.max_sequence).err().unwrap().to_string();
    assert!(error.contains("between 1 and 254"), "{error}");
    let error = Chunker::new(&model.tokenizer().unwrap(), 50, 50, model.max_sequence).err().unwrap().to_string();
    assert!(error.contains("must be smaller"), "{error}");
}

#[test]
fn chunks_carry_the_page_and_heading_they_start_on_and_the_page_they_end_on() {
    let model = model();
    let chunker = Chunker::new(&model.tokenizer().unwrap(), 40, 0, model.max_sequence).unwrap();
    let mut document = Document { title: Some("Field notes".into()), ..Document::default() };
    for page in 1..=12u32 {
        document.anchors.push(Anchor { offset: document.text.len(), place: Place::Page(page) });
        if (page - 1).is_multiple_of(3) {
            let heading = format!("Part {}", page / 3 + 1);
            document.anchors.push(Anchor { offset: document.text.len(), place: Place::Heading(heading.clone()) });
            document.text.push_str(&format!("{heading}\n\n"));
        }
        let words: Vec<String> = (0..3).map(|i| format!("page{page}word{i}")).collect();
        document.text.push_str(&format!("{}\n\n", words.join(" ")));
    }
    let chunks = chunker.chunk(&document);
    assert!(chunks.len() > 2, "{}", chunks.len());
    let mut spanning = 0;
    for chunk in &chunks {
        let Origin { page: Some(page), page_end: Some(end), heading: Some(heading), title, .. } = &chunk.origin else {
            panic!("chunk {} has no page or heading: {:?}", chunk.index, chunk.origin);
        };
        assert_eq!(title.as_deref(), Some("Field notes"));
        // The lines name their page: words say it, a heading "Part k" opens page 3k - 2. The
        // first line is on `page`, the last on `page_end`.
        let page_of = |line: &str| match line.strip_prefix("Part ") {
            Some(part) => part.parse::<u32>().unwrap() * 3 - 2,
            None => line.trim_start_matches("page").split("word").next().unwrap().parse::<u32>().unwrap(),
        };
        let lines: Vec<&str> = chunk.content.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(page_of(lines[0]), *page, "chunk {}: {:?}", chunk.index, chunk.content);
        assert_eq!(page_of(lines.last().unwrap()), *end, "chunk {}: {:?}", chunk.index, chunk.content);
        assert_eq!(*heading, format!("Part {}", (page - 1) / 3 + 1), "chunk {}", chunk.index);
        spanning += usize::from(end > page);
    }
    assert!(spanning > 0, "some chunk crosses a page: {chunks:#?}");
}

#[test]
fn embeddings_are_normalised_meaningful_and_order_independent() {
    let mut embedder = Embedder::new(model(), 2).unwrap();
    let texts = [
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly revenue grew by 12 percent.",
        "Short.",
        "A considerably longer sentence, so that the sorted batches carry different padding than the input order.",
    ];
    let tokenizer = embedder.info.tokenizer().unwrap();
    let counted: Vec<(&str, usize)> = texts.iter().map(|t| (*t, count_tokens(&tokenizer, t))).collect();
    // Cut by a count of texts only, the token budget out of the way.
    let vectors = embedder.embed(&counted, Batching { max_texts: 4, max_tokens: usize::MAX }).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((cosine(v, v) - 1.0).abs() < 1e-4);
    }
    let similar = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!((similar - 0.654).abs() < 0.03, "cat/kitten {similar}");
    assert!(unrelated.abs() < 0.1, "cat/revenue {unrelated}");
    // Cut by padded tokens: the longest text (over the budget) alone, then pairs of shorter ones.
    let longest = counted.iter().map(|(_, tokens)| *tokens).max().unwrap();
    assert!(longest > 20, "{longest}");
    let by_tokens = embedder.embed(&counted, Batching { max_texts: 32, max_tokens: 20 }).unwrap();
    // Both sorted, batched paths equal embedding each text alone.
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder.embed_one(text).unwrap();
        for batched in [&vectors[i], &by_tokens[i]] {
            let worst = alone.iter().zip(batched).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{text:?} differs by {worst}");
        }
    }
}

/// The chunks of `document` as the splitter makes them from the whole text in one pass: what
/// the chunk stage gave before it cut texts into windows.
fn one_pass(model: &ModelInfo, document: &Document, size: usize, overlap: usize) -> Vec<String> {
    use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};
    let config = ChunkConfig::new(size).with_sizer(model.tokenizer().unwrap()).with_overlap(overlap).unwrap();
    let pieces: Vec<(usize, &str)> = if document.is_markdown {
        MarkdownSplitter::new(config).chunk_indices(&document.text).collect()
    } else {
        TextSplitter::new(config).chunk_indices(&document.text).collect()
    };
    pieces.into_iter().filter(|(_, piece)| !piece.trim().is_empty()).map(|(_, piece)| piece.to_string()).collect()
}

/// Texts longer than one window: the shipped fixtures' text files, and the larger package
/// documents of this machine (licences, changelogs and HTML manuals), up to a few MB.
fn long_documents() -> Vec<(String, Document)> {
    let mut found = Vec::new();
    let mut roots = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
    roots.push("/usr/share/doc".into());
    let mut total = 0;
    let mut stack = roots;
    let mut paths = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(kind) if kind.is_file() => paths.push(path),
                _ => {}
            }
        }
    }
    paths.sort();
    for path in paths {
        let name = path.to_string_lossy().to_string();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let bytes = match extension.as_str() {
            "gz" => match std::process::Command::new("gzip").arg("-dc").arg(&path).output() {
                Ok(out) if out.status.success() => out.stdout,
                _ => continue,
            },
            "txt" | "md" | "html" | "" => std::fs::read(&path).unwrap_or_default(),
            _ => continue,
        };
        let extension = if extension == "gz" { "txt".to_string() } else { extension };
        if bytes.len() <= ingest::chunk::WINDOW_BYTES || total > 1_500_000 {
            continue;
        }
        if let Ok(document) = ingest::extract::extract_in_process(&extension, &bytes, &Default::default()) {
            if document.text.len() > ingest::chunk::WINDOW_BYTES {
                total += document.text.len();
                found.push((name, document));
            }
        }
    }
    found
}

/// A Markdown manual of many windows: headings, paragraphs, lists, and fenced code blocks
/// with blank lines inside, which a window's cut must not turn inside out.
fn long_markdown() -> Document {
    let mut text = String::from("# The harbour manual\n\n");
    for section in 0..60 {
        text.push_str(&format!("## Section {section}: moorings and tides\n\n"));
        text.push_str(&format!("{}\n\n", common_text(section, 9)));
        text.push_str("- check the lines at slack water\n- log the height of the tide\n- report a chafed rope\n\n");
        text.push_str("```sh\n# the tide table for the week\ntides --port dover \\\n  --days 7\n\n");
        text.push_str(&format!("tides --port calais --days {section}\n```\n\n"));
        text.push_str(&format!("{}\n\n", common_text(section + 1, 5)));
    }
    Document { text, is_markdown: true, ..Document::default() }
}

fn common_text(seed: usize, sentences: usize) -> String {
    (0..sentences)
        .map(|i| {
            format!("Mooring note {} explains how the keeper doubles line {} before a spring tide.", seed * 31 + i, i)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn windowed_chunking_gives_the_chunks_of_one_pass_on_real_documents() {
    let model = model();
    let chunker = Chunker::new(&model.tokenizer().unwrap(), 200, 32, model.max_sequence).unwrap();
    let mut documents = long_documents();
    assert!(!documents.is_empty(), "no document longer than a window was found");
    documents.push(("a long Markdown manual".into(), long_markdown()));
    let mut differing = Vec::new();
    for (name, document) in &documents {
        let windowed: Vec<String> = chunker.chunk(document).into_iter().map(|c| c.content).collect();
        if windowed != one_pass(&model, document, 200, 32) {
            differing.push(name.clone());
        }
    }
    println!("{} documents longer than a window, {} differ: {differing:?}", documents.len(), differing.len());
    assert!(differing.is_empty(), "windowed chunks differ from one pass for {differing:?}");
}
