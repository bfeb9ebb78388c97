//! vegeta's CSV (`vegeta encode --to csv`): no header; the columns are the send time in Unix
//! nanoseconds, code, latency in nanoseconds, bytes out, bytes in, error, body (base64), attack,
//! seq, and since vegeta 12.9 method, URL and headers. Quoted as Go's `encoding/csv` quotes.

use super::VegetaResult;

/// Reads every row; an error names its line.
pub fn read(input: impl std::io::Read) -> Result<Vec<VegetaResult>, String> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::Fields)
        .from_reader(input);
    let mut results = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("vegeta CSV: {e}"))?;
        let line = row.position().map_or(0, |p| p.line());
        let result = from_row(&row).map_err(|e| format!("vegeta CSV line {line}: {e}"))?;
        results.push(result);
    }
    Ok(results)
}

fn from_row(row: &::csv::StringRecord) -> Result<VegetaResult, String> {
    if row.len() != 9 && row.len() != 12 {
        return Err(format!(
            "{} columns, where vegeta writes 9 or 12",
            row.len()
        ));
    }
    let text = |i: usize| row.get(i).unwrap_or_default().to_string();
    let number = |i: usize, name: &str| -> Result<u64, String> {
        let field = row.get(i).unwrap_or_default();
        field
            .parse::<u64>()
            .map_err(|_| format!("{name} `{field}` is not a whole number"))
    };
    Ok(VegetaResult {
        timestamp_unix_ns: number(0, "timestamp")?,
        code: u16::try_from(number(1, "code")?).map_err(|_| "code over 65535".to_string())?,
        latency_ns: number(2, "latency")?,
        bytes_out: number(3, "bytes_out")?,
        bytes_in: number(4, "bytes_in")?,
        error: text(5),
        attack: text(7),
        seq: number(8, "seq")?,
        method: text(9),
        url: text(10),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_old_and_new_rows_and_names_a_bad_line() {
        let text = "1796047000854344036,200,276431,0,4,,cG9uZw==,story,0\n\
                    1796047000859344036,0,1000,0,0,\"Get \"\"http://x/\"\": dial tcp, refused\",,story,1,GET,http://x/,\n";
        let results = read(text.as_bytes()).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].code, 200);
        assert_eq!(results[0].timestamp_unix_ns, 1_796_047_000_854_344_036);
        assert_eq!(results[1].error, "Get \"http://x/\": dial tcp, refused");
        assert_eq!(results[1].url, "http://x/");
        let bad = "1,200,5,0,0,,,a,0\n2,two hundred,5,0,0,,,a,1\n";
        let error = read(bad.as_bytes()).unwrap_err();
        assert!(
            error.contains("line 2") && error.contains("code"),
            "{error}"
        );
    }
}
