//! Prints Runnel's CustomResourceDefinitions as multi-document YAML, or writes them into a
//! directory: `crdgen` (stdout) or `crdgen --out-dir crds`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out_dir = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--out-dir" => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: crdgen [--out-dir DIR]");
            return ExitCode::from(2);
        }
    };
    match run(out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out_dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    match out_dir {
        None => print!("{}", runnel_operator::crdgen::crds_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for file in runnel_operator::crdgen::crd_files()? {
                let path = dir.join(file.file_name);
                std::fs::write(&path, file.yaml)?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
