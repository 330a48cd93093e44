//! # Spreadsheets
//!
//! In: the bytes of an XLSX, XLS or ODS workbook. Out: a [`Document`] with each worksheet as
//! its name on a line, then one line per non-empty row, cells separated by tabs; an anchor at
//! each sheet; the workbook's title from its metadata (XLSX and ODS). Formulas give their
//! cached values (what the spreadsheet last showed), dates are written as dates.
//!
//! Parsing is `calamine`'s. XLSX and ODS are zip packages: they are opened as such first
//! ([`Package`]), which names encrypted and non-zip files plainly and reads the title.

use std::io::Cursor;

use calamine::{Data, Ods, Reader, SheetType, Xls, Xlsx};

use super::package::Package;
use super::{Anchor, Document, ExtractError, Format, Place};

/// Extracts the text of a workbook of `format` (XLSX, XLS or ODS).
pub fn extract(format: Format, bytes: &[u8]) -> Result<Document, ExtractError> {
    let title = match format {
        Format::Xlsx => Package::open(bytes, format)?.title("docProps/core.xml")?,
        Format::Ods => {
            let mut package = Package::open(bytes, format)?;
            package.refuse_encrypted_odf()?;
            package.title("meta.xml")?
        }
        _ => None,
    };
    let sheets = match format {
        Format::Xlsx => read::<Xlsx<_>>(bytes),
        Format::Xls => read::<Xls<_>>(bytes),
        _ => read::<Ods<_>>(bytes),
    }
    .map_err(|e| format.invalid(e))?;
    let mut document = Document { title, ..Document::default() };
    for (name, rows) in sheets {
        if rows.is_empty() {
            continue;
        }
        document.anchors.push(Anchor { offset: document.text.len(), place: Place::Sheet(name.clone()) });
        document.text.push_str(&name);
        document.text.push_str("\n\n");
        for row in rows {
            document.text.push_str(&row);
            document.text.push('\n');
        }
        document.text.push('\n');
    }
    Ok(document)
}

/// Each worksheet's name and its non-empty rows as lines.
fn read<'a, R: Reader<Cursor<&'a [u8]>>>(bytes: &'a [u8]) -> Result<Vec<(String, Vec<String>)>, String>
where
    R::Error: std::fmt::Display,
{
    let mut workbook = R::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let names: Vec<String> = workbook
        .sheets_metadata()
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet)
        .map(|sheet| sheet.name.clone())
        .collect();
    let mut sheets = Vec::with_capacity(names.len());
    for name in names {
        let range = workbook.worksheet_range(&name).map_err(|e| format!("sheet {name:?}: {e}"))?;
        let rows = range
            .rows()
            .map(|cells| {
                let mut cells: Vec<String> = cells.iter().map(cell).collect();
                while cells.last().is_some_and(String::is_empty) {
                    cells.pop();
                }
                cells.join("\t")
            })
            .filter(|row| !row.trim().is_empty())
            .collect();
        sheets.push((name, rows));
    }
    Ok(sheets)
}

/// A cell as text: whole numbers without a fraction, dates as dates.
fn cell(value: &Data) -> String {
    match value {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::DateTime(date) => match date.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => date.to_string(),
        },
        other => other.to_string().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_people_write_them() {
        assert_eq!(cell(&Data::Float(1200.0)), "1200");
        assert_eq!(cell(&Data::Float(0.25)), "0.25");
        assert_eq!(cell(&Data::String(" Budget ".into())), "Budget");
        assert_eq!(cell(&Data::Empty), "");
    }

    #[test]
    fn wrong_contents_name_the_format() {
        for format in [Format::Xlsx, Format::Xls, Format::Ods] {
            let error = extract(format, b"just some text, not a workbook").unwrap_err();
            assert!(error.to_string().starts_with(&format!("not a valid {} file", format.name())), "{error}");
        }
    }
}
