//! # URL redaction
//!
//! In: a URL from the settings (a database or Qdrant address). Out: the same URL fit to
//! print in logs, errors and `Debug` output, with its password and secret query parameters
//! hidden.

/// Query parameters whose values are secrets, compared without regard to case.
const SECRET_PARAMETERS: &[&str] = &["password", "pass", "pwd", "secret", "token", "api_key", "apikey", "key"];

/// `url` fit to print: a password in the user-info and the value of every query parameter
/// named like a secret become `***`, and any fragment is dropped.
///
/// The user-info is taken to run to the last `@`. When it holds a `/`, `?` or `#` (an
/// unencoded password, or an `@` further on), the URL cannot be split reliably: none of the
/// user-info is shown, and after a `?` the `@` may sit inside a secret parameter, so then only
/// the scheme is. Text without a `scheme://` is shown only when it holds none of `@`, `?` and
/// `#`; otherwise it is `<unparseable URL>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains(['@', '?', '#']) { "<unparseable URL>".into() } else { url.to_string() };
    };
    let (user_info, tail) = match rest.rsplit_once('@') {
        Some((user_info, tail)) => (Some(user_info), tail),
        None => (None, rest),
    };
    let without_fragment = tail.split('#').next().unwrap_or_default();
    let (address, query) = match without_fragment.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (without_fragment, None),
    };
    let user_info = match user_info {
        Some(info) if info.contains('?') => return format!("{scheme}://***"),
        Some(info) if info.contains(['/', '#']) => "***@".to_string(),
        Some(info) => match info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => format!("{info}@"),
        },
        None => String::new(),
    };
    let query = query.map(|query| format!("?{}", redact_query(query))).unwrap_or_default();
    format!("{scheme}://{user_info}{address}{query}")
}

/// A URL's query with the values of secret-named parameters replaced by `***`.
fn redact_query(query: &str) -> String {
    let redact_pair = |pair: &str| {
        let name = url::form_urlencoded::parse(pair.as_bytes()).next().map(|(name, _)| name.to_ascii_lowercase());
        match (pair.split_once('='), name) {
            (Some((raw_name, _value)), Some(name)) if SECRET_PARAMETERS.contains(&name.as_str()) => {
                format!("{raw_name}=***")
            }
            _ => pair.to_string(),
        }
    };
    query.split('&').map(redact_pair).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_user_info_are_hidden() {
        assert_eq!(redact_url("postgres://u:hunter2@127.0.0.1:5432/db"), "postgres://u:***@127.0.0.1:5432/db");
        assert_eq!(redact_url("postgres://u@127.0.0.1/db"), "postgres://u@127.0.0.1/db");
        assert_eq!(redact_url("http://localhost:6334"), "http://localhost:6334");
        assert_eq!(redact_url("sqlite:///data/catalog.sqlite?mode=rwc"), "sqlite:///data/catalog.sqlite?mode=rwc");
    }

    #[test]
    fn secret_query_parameters_are_hidden_whatever_their_case() {
        let url = "postgres://u@h/db?sslmode=require&Password=hunter1&PWD=hunter2&pass=hunter3&secret=hunter4\
                   &token=hunter5&api_key=hunter6&ApiKey=hunter7&key=hunter8&pass%77ord=hunter9";
        assert_eq!(
            redact_url(url),
            "postgres://u@h/db?sslmode=require&Password=***&PWD=***&pass=***&secret=***&token=***&api_key=***\
             &ApiKey=***&key=***&pass%77ord=***"
        );
    }

    #[test]
    fn unparseable_user_info_is_hidden_whole() {
        for url in [
            "postgres://u:hun#ter2@127.0.0.1:1/db",
            "postgres://u:12#hunter@127.0.0.1:1/db",
            "postgres://u:hun/ter2@127.0.0.1:1/db",
            "postgres://u:hun://ter2@127.0.0.1:1/db",
        ] {
            assert_eq!(redact_url(url), "postgres://***@127.0.0.1:1/db", "{url}");
        }
        for url in ["postgres://u:hun?ter2@127.0.0.1:1/db", "postgres://h/db?password=a@hunter"] {
            assert_eq!(redact_url(url), "postgres://***", "{url}: the @ may be inside a query value");
        }
        assert_eq!(redact_url("http://h:6334/#hunter"), "http://h:6334/", "fragments are dropped");
        assert_eq!(redact_url("u:hunter2@host/db"), "<unparseable URL>");
        assert_eq!(redact_url("localhost:6334"), "localhost:6334");
    }
}
