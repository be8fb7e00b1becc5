//! cluster.yaml is untrusted input: parsing, validating, planning and rendering the error
//! report must never panic, whatever the bytes.
#![no_main]

use std::path::Path;

use kube_bundle::error::Error;
use kube_bundle::source::SourceFile;
use kube_bundle::validate::ValidateOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let source = SourceFile::new(Path::new("fuzz.yaml"), text);
    match kube_bundle::validate_source(&source, ValidateOptions::default()) {
        Ok(validated) => {
            kube_bundle::plan::plan(&validated.cluster);
        }
        Err(Error::InvalidConfig(reports)) => {
            for report in &reports {
                let _ = kube_bundle::diagnostics::render(report.as_ref());
            }
        }
        Err(_) => {}
    }
});
