//! # HTML
//!
//! In: the text of an HTML or XHTML page. Out: its visible text as a [`Document`]: headings,
//! paragraphs, list items and table rows each on their own line (table cells separated by
//! tabs, preformatted text kept as it is), an anchor at each heading (`h1` to `h6`), and the
//! `<title>` as the document's title. Scripts, styles, forms' controls, hidden elements and
//! navigation boilerplate (`nav`, `aside`, and the page's own `header` and `footer`, those
//! outside any `article`, `section` or `main`) are dropped.
//!
//! Parsing is html5ever's, through `scraper`, into an arena tree, and the walk here is a loop,
//! not a recursion: a deeply nested page costs time (bounded by the worker's timeout), never
//! the stack.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

use super::{Anchor, Document, Place};

/// Elements whose whole subtree is not visible text.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "aside", "svg", "math", "iframe", "object", "canvas",
    "select", "button", "textarea",
];

/// Sectioning elements: a `header` or `footer` inside one belongs to its content.
const SECTIONS: &[&str] = &["article", "section", "main"];

/// Elements that end a paragraph (a blank line after them).
const PARAGRAPHS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "table",
    "ul",
    "ol",
    "dl",
    "section",
    "article",
    "main",
    "figure",
    "hr",
    "address",
    "details",
    "header",
    "footer",
];

/// Elements that end a line.
const LINES: &[&str] = &["div", "li", "dt", "dd", "tr", "br", "figcaption", "caption", "summary", "legend", "option"];

/// Extracts the visible text of an HTML page.
pub fn extract(html: &str) -> Document {
    let page = Html::parse_document(html);
    let mut out = Writer::default();
    let mut title: Option<String> = None;
    let mut title_text: Option<String> = None;
    // Depth inside a skipped subtree, inside sectioning elements, inside `pre`.
    let (mut skipped, mut sections, mut pre) = (0usize, 0usize, 0usize);
    for edge in page.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if name == "title" && title.is_none() && title_text.is_none() {
                        title_text = Some(String::new());
                    }
                    let hidden = element.attr("hidden").is_some()
                        || element.attr("aria-hidden") == Some("true")
                        || element.attr("role") == Some("navigation");
                    let boilerplate = matches!(name, "header" | "footer") && sections == 0;
                    if skipped > 0 || SKIPPED.contains(&name) || hidden || boilerplate {
                        skipped += 1;
                        continue;
                    }
                    sections += usize::from(SECTIONS.contains(&name));
                    pre += usize::from(name == "pre");
                    out.open(name);
                }
                Node::Text(text) => {
                    if let Some(title_text) = title_text.as_mut() {
                        title_text.push_str(text);
                    } else if skipped == 0 {
                        out.text(text, pre > 0);
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                let Node::Element(element) = node.value() else { continue };
                let name = element.name();
                if name == "title" {
                    if let Some(text) = title_text.take() {
                        title = Some(collapse(&text)).filter(|t| !t.is_empty());
                        // An empty `<title>` still ends the search: the page declares none.
                        title.get_or_insert_with(String::new);
                    }
                }
                if skipped > 0 {
                    skipped -= 1;
                    continue;
                }
                sections -= usize::from(SECTIONS.contains(&name));
                pre -= usize::from(name == "pre");
                out.close(name);
            }
        }
    }
    let mut document = out.finish();
    document.title = title.filter(|t| !t.is_empty());
    document
}

/// Whitespace runs as single spaces, trimmed.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the text, inserting breaks and spaces lazily: only before the next text written, so
/// empty elements leave no blank lines.
#[derive(Default)]
struct Writer {
    doc: Document,
    /// Newlines owed before the next text (0, 1 or 2).
    breaks: usize,
    /// A separator owed before the next text on the same line (a space, or a tab between
    /// cells).
    gap: Option<char>,
    /// The heading being written: where its text starts, and its text.
    heading: Option<(Option<usize>, String)>,
}

impl Writer {
    fn open(&mut self, name: &str) {
        if is_heading(name) && self.heading.is_none() {
            self.heading = Some((None, String::new()));
        }
        self.block(name);
    }

    fn close(&mut self, name: &str) {
        if is_heading(name) {
            if let Some((Some(offset), text)) = self.heading.take() {
                let text = without_permalink(&collapse(&text));
                if !text.is_empty() {
                    self.doc.anchors.push(Anchor { offset, place: Place::Heading(text) });
                }
            }
        }
        if matches!(name, "td" | "th") {
            self.gap = Some('\t');
        }
        self.block(name);
    }

    fn block(&mut self, name: &str) {
        if PARAGRAPHS.contains(&name) {
            self.breaks = 2;
        } else if LINES.contains(&name) {
            self.breaks = self.breaks.max(1);
        }
    }

    fn text(&mut self, text: &str, preformatted: bool) {
        if preformatted {
            if !text.is_empty() {
                self.start_writing();
                self.write(&text.replace("\r\n", "\n"));
            }
            return;
        }
        if text.starts_with(char::is_whitespace) {
            self.gap.get_or_insert(' ');
        }
        for (i, word) in text.split_whitespace().enumerate() {
            if i > 0 {
                self.gap.get_or_insert(' ');
            }
            self.start_writing();
            self.write(word);
        }
        if text.ends_with(char::is_whitespace) {
            self.gap.get_or_insert(' ');
        }
    }

    /// Writes what breaks and gaps are owed, then notes where a heading's text starts.
    fn start_writing(&mut self) {
        let text = &mut self.doc.text;
        if self.breaks > 0 && !text.is_empty() {
            text.truncate(text.trim_end_matches([' ', '\t']).len());
            let have = text.len() - text.trim_end_matches('\n').len();
            for _ in have..self.breaks {
                text.push('\n');
            }
        } else if let Some(gap) = self.gap {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push(gap);
            }
        }
        self.breaks = 0;
        self.gap = None;
        if let Some((offset, _)) = self.heading.as_mut() {
            offset.get_or_insert(self.doc.text.len());
        }
    }

    fn write(&mut self, text: &str) {
        self.doc.text.push_str(text);
        if let Some((_, heading)) = self.heading.as_mut() {
            heading.push(' ');
            heading.push_str(text);
        }
    }

    fn finish(mut self) -> Document {
        let end = self.doc.text.trim_end().len();
        self.doc.text.truncate(end);
        self.doc.text.push('\n');
        self.doc
    }
}

/// A heading's text without the permalink mark sites put after it (`Usage #`, `Usage ¶`).
fn without_permalink(heading: &str) -> String {
    match heading.rsplit_once(' ') {
        Some((text, "#" | "¶" | "§" | "🔗")) => text.to_string(),
        _ => heading.to_string(),
    }
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Lighthouse
  keeping</title><style>body { color: red }</style><script>var x = "hidden";</script></head>
<body>
<header><a href="/">Home</a> | <a href="/about">About</a></header>
<nav><ul><li>Menu one</li><li>Menu two</li></ul></nav>
<main>
<article>
<header><h1>Keeping the <em>light</em></h1></header>
<p>The keeper trimmed the <b>wick</b> every
   evening.</p>
<h2>Duties</h2>
<ul><li>Polish the lens</li><li>Wind the clockwork</li></ul>
<table><tr><th>Hour</th><th>Task</th></tr><tr><td>18:00</td><td>Light the lamp</td></tr></table>
<pre>log:
  all quiet</pre>
<div hidden>secret</div>
</article>
</main>
<footer>Copyright the lighthouse board</footer>
</body></html>"#;

    #[test]
    fn visible_text_with_lines_headings_and_title() {
        let doc = extract(PAGE);
        assert_eq!(doc.title.as_deref(), Some("Lighthouse keeping"));
        assert_eq!(
            doc.text,
            "Keeping the light\n\nThe keeper trimmed the wick every evening.\n\nDuties\n\nPolish the lens\n\
             Wind the clockwork\n\nHour\tTask\n18:00\tLight the lamp\n\nlog:\n  all quiet\n"
        );
        let headings: Vec<(usize, &Place)> = doc.anchors.iter().map(|a| (a.offset, &a.place)).collect();
        let duties = doc.text.find("Duties").unwrap();
        assert_eq!(
            headings,
            vec![(0, &Place::Heading("Keeping the light".into())), (duties, &Place::Heading("Duties".into()))]
        );
        for dropped in ["Home", "Menu", "hidden", "secret", "Copyright", "color"] {
            assert!(!doc.text.contains(dropped), "{dropped} in {:?}", doc.text);
        }
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let deep = "<div>".repeat(2_000) + "bottom" + &"</div>".repeat(2_000);
        assert_eq!(extract(&deep).text, "bottom\n");
        assert_eq!(extract("<p>no title</p>").title, None);
    }

    #[test]
    fn permalink_marks_leave_headings() {
        let page = extract("<h2>path.resolve() <a href='#r'>#</a></h2><h2>Notes ¶</h2><h3>C#</h3>");
        let headings: Vec<&Place> = page.anchors.iter().map(|a| &a.place).collect();
        let expected = ["path.resolve()", "Notes", "C#"].map(|h| Place::Heading(h.into()));
        assert_eq!(headings, expected.iter().collect::<Vec<_>>());
    }
}
