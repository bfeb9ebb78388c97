//! vegeta's own results files, read as `throng report`, `encode` and `plot` read them. The three
//! files in `tests/vegeta/` are one run of vegeta 12.13 (`vegeta attack -rate=20 -duration=300ms`
//! over three targets, one of them refusing connections) written as vegeta writes them: its
//! binary results, and `vegeta encode --to csv` and `--to json` of them. vegeta's own report of
//! that run is the reference every format must give.

use serde_json::Value;
use throng_results::encode::read_any;
use throng_results::report::Summary;

fn report_of(file: &str) -> Value {
    let path = format!("{}/tests/vegeta/{file}", env!("CARGO_MANIFEST_DIR"));
    let input = std::fs::File::open(&path).unwrap();
    let reader = read_any(input).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut summary = Summary::new(None);
    summary.add_stream(reader).unwrap();
    summary.json()
}

#[test]
fn vegetas_binary_csv_and_json_results_report_as_vegeta_reports_them() {
    for file in ["story.gob", "story.csv", "story.json"] {
        let report = report_of(file);
        // `vegeta report -type=json story.gob` on the same run.
        assert_eq!(report["requests"], 6, "{file}: {report}");
        assert_eq!(report["status_codes"]["200"], 4, "{file}: {report}");
        assert_eq!(report["status_codes"]["0"], 2, "{file}: {report}");
        assert_eq!(report["bytes_in"]["total"], 16, "{file}: {report}");
        let latencies = &report["latencies"];
        assert_eq!(latencies["min"], 618_005, "{file}: {report}");
        assert_eq!(latencies["max"], 4_591_944, "{file}: {report}");
        assert_eq!(latencies["mean"], 2_303_468, "{file}: {report}");
        assert_eq!(
            report["earliest"], "2026-11-30T14:06:39.280093366Z",
            "{file}"
        );
        assert_eq!(report["latest"], "2026-11-30T14:06:39.530036909Z", "{file}");
        assert_eq!(
            report["throng"]["error_classes"]["connection-refused"], 2,
            "{file}: {report}"
        );
        let errors = report["errors"].to_string();
        assert!(
            errors.contains("connect: connection refused"),
            "{file}: {errors}"
        );
    }
}

#[test]
fn a_damaged_vegeta_file_is_refused_with_the_place_named() {
    let path = format!("{}/tests/vegeta/story.gob", env!("CARGO_MANIFEST_DIR"));
    let mut gob = std::fs::read(path).unwrap();
    // Cut inside the third result's message.
    gob.truncate(gob.len() - 200);
    let error = read_any(std::io::Cursor::new(gob)).err().unwrap();
    assert!(error.contains("result "), "{error}");
    let csv = b"1796047599280093366,200,4591944,0,4,,,story,0\n1796047599,abc,1,0,0,,,story,1\n";
    let error = read_any(std::io::Cursor::new(csv.to_vec())).err().unwrap();
    assert!(error.contains("line 2"), "{error}");
}
