//! Build script: in the release profile, the linker compresses the binary's debug sections
//! (zlib). They hold only this crate's line tables, which make a backtrace
//! (`RUST_BACKTRACE=1`) name files and lines; compressed, they cost a quarter of the space,
//! and the standard library's backtrace reads them as they are.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-Wl,--compress-debug-sections=zlib");
    }
}
