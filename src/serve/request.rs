//! # Search requests
//!
//! In: a `POST /search` JSON body, or the query string of `GET /search`. Out: a
//! [`SearchQuery`] (a checked [`SearchRequest`], and which collection and generation to read),
//! or a 400 whose one sentence says what is wrong.
//!
//! Both carry the same fields: `query` (`q` in a URL), `k` (1 to 1000, default 5), `mode`
//! (`hybrid`, `dense` or `sparse`), `ext` (one or more extensions), `path_prefix` (an absolute
//! path), `filter` (payload key/values: an object in JSON, `key=value` in a URL, repeatable),
//! `ranks` (with each side's rank), `generation` and `collection`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Refusal;
use crate::search::{SearchRequest, LIMITS};
use crate::store::{PointFilter, SearchMode};

/// Hits when a request does not say.
const DEFAULT_K: usize = 5;

/// The longest query, in characters: more than a model reads.
const LONGEST_QUERY: usize = 4096;

/// A search as the service runs it.
#[derive(Debug)]
pub struct SearchQuery {
    pub request: SearchRequest,
    /// The collection to read; the service's own when `None`.
    pub collection: Option<String>,
    /// The generation to read; the live one when `None`.
    pub generation: Option<i64>,
}

/// Extensions as one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A `POST /search` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(alias = "q")]
    query: String,
    k: Option<u64>,
    mode: Option<String>,
    ext: Option<OneOrMany>,
    path_prefix: Option<String>,
    #[serde(default)]
    filter: BTreeMap<String, String>,
    #[serde(default)]
    ranks: bool,
    generation: Option<i64>,
    collection: Option<String>,
}

impl SearchQuery {
    /// From a JSON body, whatever the Content-Type says (`curl -d` sends JSON as a form).
    pub fn from_json(body: &[u8]) -> Result<Self, Refusal> {
        let body: Body = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not a search: {e}")))?;
        let extensions = match body.ext {
            None => Vec::new(),
            Some(OneOrMany::One(ext)) => vec![ext],
            Some(OneOrMany::Many(exts)) => exts,
        };
        build(Fields {
            query: body.query,
            k: body.k,
            mode: body.mode,
            extensions,
            path_prefix: body.path_prefix,
            filter: body.filter.into_iter().collect(),
            ranks: body.ranks,
            generation: body.generation,
            collection: body.collection,
        })
    }

    /// From a URL's query string, such as `q=zlib&k=3&ext=pdf&ext=md&filter=sheet=Budget`.
    pub fn from_url_query(query: &str) -> Result<Self, Refusal> {
        let mut fields = Fields::default();
        let mut query_text = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "q" | "query" => query_text = Some(value),
                "k" => {
                    fields.k =
                        Some(value.parse().map_err(|_| bad(format!("k must be a whole number (got {value:?})")))?)
                }
                "mode" => fields.mode = Some(value),
                "ext" => fields.extensions.push(value),
                "path_prefix" => fields.path_prefix = Some(value),
                "filter" => match value.split_once('=') {
                    Some((key, wanted)) if !key.trim().is_empty() => {
                        fields.filter.push((key.trim().to_string(), wanted.to_string()))
                    }
                    _ => return Err(bad(format!("filter must be KEY=VALUE, such as sheet=Budget (got {value:?})"))),
                },
                "ranks" => fields.ranks = matches!(value.as_str(), "" | "1" | "true" | "yes"),
                "generation" => {
                    fields.generation =
                        Some(value.parse().map_err(|_| bad(format!("generation must be a number (got {value:?})")))?)
                }
                "collection" => fields.collection = Some(value),
                other => return Err(bad(format!("unknown parameter {other:?}; GET /openapi.json lists them"))),
            }
        }
        fields.query = query_text.ok_or_else(|| bad("the query is missing: give q, as in /search?q=your+words"))?;
        build(fields)
    }
}

/// The fields of a search, however they came.
#[derive(Default)]
struct Fields {
    query: String,
    k: Option<u64>,
    mode: Option<String>,
    extensions: Vec<String>,
    path_prefix: Option<String>,
    filter: Vec<(String, String)>,
    ranks: bool,
    generation: Option<i64>,
    collection: Option<String>,
}

fn build(fields: Fields) -> Result<SearchQuery, Refusal> {
    let query = fields.query.trim().to_string();
    if query.is_empty() {
        return Err(bad("the query is empty"));
    }
    if query.chars().count() > LONGEST_QUERY {
        return Err(bad(format!("the query is longer than {LONGEST_QUERY} characters")));
    }
    let limit = fields.k.unwrap_or(DEFAULT_K as u64);
    let limit = usize::try_from(limit)
        .ok()
        .filter(|k| LIMITS.contains(k))
        .ok_or_else(|| bad(format!("k must be between {} and {} (got {limit})", LIMITS.start(), LIMITS.end())))?;
    let mode = match fields.mode.as_deref().unwrap_or("hybrid") {
        "hybrid" => SearchMode::Hybrid,
        "dense" => SearchMode::Dense,
        "sparse" => SearchMode::Sparse,
        other => return Err(bad(format!("mode must be hybrid, dense or sparse (got {other:?})"))),
    };
    let path_contains = match fields.path_prefix {
        None => None,
        Some(prefix) if prefix.starts_with('/') => Some(
            crate::search::path_prefix(std::path::Path::new(&prefix))
                .map_err(|e| bad(format!("path_prefix: {e:#}")))?,
        ),
        Some(prefix) => return Err(bad(format!("path_prefix must be an absolute path (got {prefix:?})"))),
    };
    if let Some(collection) = &fields.collection {
        if collection.is_empty() || !collection.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            return Err(bad(format!("collection must be letters, digits, '-' or '_' (got {collection:?})")));
        }
    }
    let extensions = fields.extensions.iter().map(|e| e.trim_start_matches('.').to_lowercase()).collect();
    Ok(SearchQuery {
        request: SearchRequest {
            query,
            limit,
            mode,
            filter: PointFilter { path_contains, equals: fields.filter, extensions },
            with_ranks: fields.ranks,
        },
        collection: fields.collection,
        generation: fields.generation,
    })
}

fn bad(sentence: impl Into<String>) -> Refusal {
    Refusal::BadRequest(sentence.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(outcome: Result<SearchQuery, Refusal>) -> String {
        match outcome {
            Err(Refusal::BadRequest(sentence)) => sentence,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_url_and_a_body_ask_the_same_search() {
        let from_url = SearchQuery::from_url_query(
            "q=zlib+deflate&k=3&mode=sparse&ext=PDF&ext=.md&filter=sheet=Budget&generation=2",
        )
        .unwrap();
        let body = br#"{"query": "zlib deflate", "k": 3, "mode": "sparse", "ext": ["PDF", ".md"],
                        "filter": {"sheet": "Budget"}, "generation": 2}"#;
        let from_body = SearchQuery::from_json(body).unwrap();
        for asked in [&from_url, &from_body] {
            assert_eq!(asked.request.query, "zlib deflate");
            assert_eq!(asked.request.limit, 3);
            assert_eq!(asked.request.mode, SearchMode::Sparse);
            assert_eq!(asked.request.filter.extensions, ["pdf", "md"]);
            assert_eq!(asked.request.filter.equals, [("sheet".to_string(), "Budget".to_string())]);
            assert_eq!(asked.generation, Some(2));
        }
    }

    #[test]
    fn wrong_requests_get_one_sentence_each() {
        assert!(refused(SearchQuery::from_url_query("q=a&k=0")).contains("between 1 and 1000 (got 0)"));
        assert!(refused(SearchQuery::from_url_query("q=a&k=1000000000")).contains("(got 1000000000)"));
        assert!(refused(SearchQuery::from_url_query("q=a&k=-1")).contains("whole number"));
        assert!(refused(SearchQuery::from_url_query("q=a&mode=fuzzy")).contains("hybrid, dense or sparse"));
        assert!(refused(SearchQuery::from_url_query("k=3")).contains("query is missing"));
        assert!(refused(SearchQuery::from_url_query("q=+++")).contains("empty"));
        assert!(refused(SearchQuery::from_url_query("q=a&path_prefix=docs")).contains("absolute"));
        assert!(refused(SearchQuery::from_url_query("q=a&colour=red")).contains("unknown parameter"));
        assert!(refused(SearchQuery::from_url_query("q=a&filter=novalue")).contains("KEY=VALUE"));
        assert!(refused(SearchQuery::from_url_query("q=a&collection=../x")).contains("letters, digits"));
        assert!(refused(SearchQuery::from_json(b"{not json")).contains("not a search"));
        assert!(refused(SearchQuery::from_json(br#"{"query": "a", "k": 0}"#)).contains("(got 0)"));
        assert!(refused(SearchQuery::from_json(br#"{"query": "a", "colour": 1}"#)).contains("colour"));
        assert!(refused(SearchQuery::from_json(br#"{"query": 7}"#)).contains("not a search"));
    }
}
