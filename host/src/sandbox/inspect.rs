//! Reads an uploaded module before anything is compiled: is it a core module, does it speak our
//! ABI version, does it import only what the host offers, does it fit the host's caps.
//!
//! This pass is cheap (no code generation), so a module that would be refused anyway never
//! costs a compile. Full validation happens when wasmtime compiles it.

use fnhost_abi::FunctionMeta;
use wasmparser::{Encoding, ExternalKind, Parser, Payload, TypeRef};

use super::abi::{self, Abi};
use super::hostfn;
use crate::error::{Error, Kind};

/// What the pre-pass learned about a module.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The ABI version every metadata record declares.
    pub abi: Abi,
    /// One record per RPC function, from the `fnhost.functions` section, in export order.
    pub functions: Vec<FunctionMeta>,
    /// Functions the module defines (a compile-cost indicator).
    pub defined_functions: u32,
    /// What it imports, as `module.name` (all of them host functions, or it was refused).
    pub imports: Vec<String>,
}

/// Caps the pre-pass enforces.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_memory_bytes: u64,
    pub max_table_elements: u32,
    pub max_functions: u32,
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(Kind::BadModule, message)
}

/// Checks `bytes` against `docs/ABI.md` and the caps.
pub fn inspect(bytes: &[u8], caps: &Caps) -> Result<Inspected, Error> {
    if bytes.is_empty() {
        return Err(bad("the module is empty (0 bytes)"));
    }
    let mut meta_bytes: Vec<u8> = Vec::new();
    let mut saw_meta = false;
    let mut exports: Vec<(String, ExternalKind)> = Vec::new();
    let mut memories = 0u32;
    let mut tables = 0u32;
    let mut defined_functions = 0u32;
    let mut imports: Vec<String> = Vec::new();

    for payload in Parser::new(0).parse_all(bytes) {
        let payload =
            payload.map_err(|e| bad(format!("not a valid WebAssembly module: {}", e.message())))?;
        match payload {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => {
                return Err(bad(
                    "this is a WebAssembly component; fnhost runs core modules \
                     (build for wasm32-unknown-unknown)",
                ));
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| bad(format!("bad import: {}", e.message())))?;
                    let offered = hostfn::offers(import.module, import.name)
                        && matches!(import.ty, TypeRef::Func(_));
                    imports.push(format!("{}.{}", import.module, import.name));
                    if !offered {
                        return Err(bad(format!(
                            "the module imports `{}.{}`, which this host does not offer \
                             (it offers only {})",
                            import.module,
                            import.name,
                            hostfn::offered()
                        ))
                        .with("import", format!("{}.{}", import.module, import.name)));
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(|e| bad(format!("bad memory: {}", e.message())))?;
                    memories += 1;
                    if memory.memory64 || memory.shared {
                        return Err(bad("64-bit and shared memories are not supported"));
                    }
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let min_bytes = memory.initial.saturating_mul(page);
                    if min_bytes > caps.max_memory_bytes {
                        return Err(Error::new(
                            Kind::MemoryLimit,
                            format!(
                                "the module declares a minimum of {} MiB of linear memory, above \
                                 the host's cap of {} MiB",
                                min_bytes >> 20,
                                caps.max_memory_bytes >> 20
                            ),
                        )
                        .with("limit_bytes", caps.max_memory_bytes)
                        .with("requested_bytes", min_bytes));
                    }
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(|e| bad(format!("bad table: {}", e.message())))?;
                    tables += 1;
                    if table.ty.initial > u64::from(caps.max_table_elements) {
                        return Err(Error::new(
                            Kind::MemoryLimit,
                            format!(
                                "the module declares a table of {} elements, above the host's \
                                 cap of {}",
                                table.ty.initial, caps.max_table_elements
                            ),
                        )
                        .with("limit_elements", caps.max_table_elements)
                        .with("requested_elements", table.ty.initial));
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                defined_functions = defined_functions.saturating_add(reader.count());
                if defined_functions > caps.max_functions {
                    return Err(bad(format!(
                        "the module defines {defined_functions} functions, above the host's cap \
                         of {}",
                        caps.max_functions
                    )));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| bad(format!("bad export: {}", e.message())))?;
                    exports.push((export.name.to_owned(), export.kind));
                }
            }
            Payload::CustomSection(section) if section.name() == fnhost_abi::META_SECTION => {
                saw_meta = true;
                meta_bytes.extend_from_slice(section.data());
            }
            _ => {}
        }
    }

    if memories > 1 {
        return Err(bad(format!(
            "the module has {memories} memories; at most 1 is allowed"
        )));
    }
    if tables > 1 {
        return Err(bad(format!(
            "the module has {tables} tables; at most 1 is allowed"
        )));
    }
    if !saw_meta {
        return Err(bad(format!(
            "the module declares no fnhost ABI version: it has no `{}` custom section \
             (build it with the fnhost-guest SDK, or see docs/ABI.md); this host speaks {}",
            fnhost_abi::META_SECTION,
            abi::spoken()
        )));
    }
    let (abi, functions) = parse_meta(&meta_bytes)?;
    check_exports(abi, &exports, &functions)?;
    let params_import = format!("{}.{}", fnhost_abi::HOST_MODULE, fnhost_abi::PARAMS_IMPORT);
    if abi == Abi::V1 && imports.contains(&params_import) {
        return Err(bad(format!(
            "the module imports `{params_import}`, which is part of ABI v2, but declares ABI v1 \
             (a v1 function gets its params from `{}`)",
            fnhost_abi::ALLOC_EXPORT
        ))
        .with("import", params_import));
    }
    Ok(Inspected {
        abi,
        functions,
        defined_functions,
        imports,
    })
}

/// The records of the metadata section, and the one ABI version they all declare.
fn parse_meta(bytes: &[u8]) -> Result<(Abi, Vec<FunctionMeta>), Error> {
    let mut functions: Vec<FunctionMeta> = Vec::new();
    let mut declared: Option<Abi> = None;
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    for (i, record) in stream.enumerate() {
        let record = record.map_err(|e| {
            bad(format!(
                "the `{}` section is not a sequence of JSON records (record {}): {e}",
                fnhost_abi::META_SECTION,
                i + 1
            ))
        })?;
        // Check the version before the shape, so a future ABI's records get the version message.
        let version = record.get("abi").and_then(serde_json::Value::as_u64);
        let abi = match version.map(|v| (v, Abi::from_version(v))) {
            Some((_, Some(abi))) => abi,
            Some((v, None)) => {
                return Err(bad(format!(
                    "the module was built for fnhost ABI v{v}; this host speaks {}",
                    abi::spoken()
                ))
                .with("module_abi", v)
                .with("host_abi", Abi::newest().version()));
            }
            None => {
                return Err(bad(format!(
                    "metadata record {} has no `abi` version; this host speaks {}",
                    i + 1,
                    abi::spoken()
                )));
            }
        };
        match declared {
            Some(first) if first != abi => {
                return Err(bad(format!(
                    "metadata records declare different ABI versions (v{} and v{}); a module \
                     speaks one",
                    first.version(),
                    abi.version()
                )));
            }
            _ => declared = Some(abi),
        }
        let meta: FunctionMeta = serde_json::from_value(record)
            .map_err(|e| bad(format!("metadata record {} is malformed: {e}", i + 1)))?;
        if !fnhost_abi::is_valid_function_name(&meta.name) {
            return Err(bad(format!(
                "metadata names the function {:?}, which is not a valid function name \
                 ([A-Za-z_][A-Za-z0-9_]*, at most {} characters)",
                meta.name,
                fnhost_abi::MAX_FUNCTION_NAME
            )));
        }
        if functions.iter().any(|f| f.name == meta.name) {
            return Err(bad(format!(
                "metadata describes the function `{}` twice",
                meta.name
            )));
        }
        if meta.raw && meta.params.len() != 1 {
            return Err(bad(format!(
                "metadata of the raw function `{}` must describe exactly one parameter",
                meta.name
            )));
        }
        functions.push(meta);
    }
    match declared {
        Some(abi) => Ok((abi, functions)),
        None => Err(bad(format!(
            "the module exports no fnhost functions (its `{}` section is empty)",
            fnhost_abi::META_SECTION
        ))),
    }
}

/// The exports `abi` asks for: `memory`, (v1 only) `fnhost_alloc`, and `fnhost_call_<f>` for
/// exactly the functions the metadata describes. (Their types are checked when the module is
/// compiled: `Sandbox::program`.)
fn check_exports(
    abi: Abi,
    exports: &[(String, ExternalKind)],
    functions: &[FunctionMeta],
) -> Result<(), Error> {
    let kind_of = |name: &str| exports.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
    if kind_of(fnhost_abi::MEMORY_EXPORT) != Some(ExternalKind::Memory) {
        return Err(bad(format!(
            "the module does not export its memory as `{}`",
            fnhost_abi::MEMORY_EXPORT
        )));
    }
    if abi == Abi::V1 && kind_of(fnhost_abi::ALLOC_EXPORT) != Some(ExternalKind::Func) {
        return Err(bad(format!(
            "the module does not export the function `{}`",
            fnhost_abi::ALLOC_EXPORT
        )));
    }
    for meta in functions {
        let export = format!("{}{}", fnhost_abi::CALL_PREFIX, meta.name);
        if kind_of(&export) != Some(ExternalKind::Func) {
            return Err(bad(format!(
                "metadata describes `{}` but the module does not export the function `{export}`",
                meta.name
            )));
        }
    }
    for (name, kind) in exports {
        if let Some(function) = name.strip_prefix(fnhost_abi::CALL_PREFIX)
            && *kind == ExternalKind::Func
            && !functions.iter().any(|f| f.name == function)
        {
            return Err(bad(format!(
                "the module exports `{name}` but its metadata does not describe `{function}`"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        max_memory_bytes: 64 << 20,
        max_table_elements: 10_000,
        max_functions: 50_000,
    };

    fn module(body: &str, meta: &str) -> Vec<u8> {
        let wat = format!(
            r#"(module
                {body}
                (memory (export "memory") 1)
                (func (export "fnhost_alloc") (param i32) (result i32) i32.const 16)
                (func (export "fnhost_call_f") (param i32 i32) (result i64) i64.const 0)
                (@custom "fnhost.functions" "{meta}"))"#
        );
        wat::parse_str(wat).unwrap()
    }

    const META: &str = r#"{\"abi\":1,\"name\":\"f\"}"#;

    #[test]
    fn accepts_a_minimal_abi_module() {
        let i = inspect(&module("", META), &CAPS).unwrap();
        assert_eq!(i.functions.len(), 1);
        assert_eq!(i.functions[0].name, "f");
    }

    #[test]
    fn names_an_unknown_import() {
        let m = module(r#"(import "env" "system" (func (param i32)))"#, META);
        let e = inspect(&m, &CAPS).unwrap_err();
        assert_eq!(e.kind, Kind::BadModule);
        assert!(e.message.contains("`env.system`"), "{}", e.message);
    }

    #[test]
    fn refuses_other_abi_versions_naming_both() {
        let m = module("", r#"{\"abi\":7,\"name\":\"f\"}"#);
        let e = inspect(&m, &CAPS).unwrap_err();
        assert!(
            e.message.contains("ABI v7") && e.message.contains("ABI v1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn records_must_agree_on_their_version() {
        let wat = r#"(module
            (memory (export "memory") 1)
            (func (export "fnhost_alloc") (param i32) (result i32) i32.const 16)
            (func (export "fnhost_call_f") (param i32 i32) (result i64) i64.const 0)
            (func (export "fnhost_call_g") (param i32 i32) (result i64) i64.const 0)
            (@custom "fnhost.functions" "{\"abi\":1,\"name\":\"f\"}{\"abi\":2,\"name\":\"g\"}"))"#;
        let e = inspect(&wat::parse_str(wat).unwrap(), &CAPS).unwrap_err();
        assert!(
            e.message.contains("v2") && e.message.contains("v1"),
            "{}",
            e.message
        );
        let i = inspect(&module("", META), &CAPS).unwrap();
        assert_eq!(i.abi, Abi::V1);
    }

    /// A v2 module needs no `fnhost_alloc` and may import `fnhost.params`; a v1 module may not.
    #[test]
    fn v2_pulls_its_params_and_v1_may_not() {
        let v2 = r#"(module
            (import "fnhost" "params" (func (param i32)))
            (memory (export "memory") 1)
            (func (export "fnhost_call_f") (param i32) (result i64) i64.const 0)
            (@custom "fnhost.functions" "{\"abi\":2,\"name\":\"f\"}"))"#;
        let i = inspect(&wat::parse_str(v2).unwrap(), &CAPS).unwrap();
        assert_eq!(i.abi, Abi::V2);
        assert_eq!(i.imports, ["fnhost.params"]);
        let v1 = module(r#"(import "fnhost" "params" (func (param i32)))"#, META);
        let e = inspect(&v1, &CAPS).unwrap_err();
        assert_eq!(e.kind, Kind::BadModule);
        assert!(
            e.message.contains("`fnhost.params`") && e.message.contains("ABI v2"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refuses_missing_metadata() {
        let wat = r#"(module (memory (export "memory") 1))"#;
        let e = inspect(&wat::parse_str(wat).unwrap(), &CAPS).unwrap_err();
        assert!(
            e.message.contains("declares no fnhost ABI version"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refuses_garbage_and_empty() {
        assert!(inspect(b"", &CAPS).unwrap_err().message.contains("empty"));
        let e = inspect(b"hello, world", &CAPS).unwrap_err();
        assert!(
            e.message.contains("not a valid WebAssembly module"),
            "{}",
            e.message
        );
    }

    #[test]
    fn refuses_memory_above_cap() {
        let wat = r#"(module (memory (export "memory") 2000))"#;
        let e = inspect(&wat::parse_str(wat).unwrap(), &CAPS).unwrap_err();
        assert_eq!(e.kind, Kind::MemoryLimit);
    }

    #[test]
    fn metadata_and_exports_must_agree() {
        let m = module("", r#"{\"abi\":1,\"name\":\"g\"}"#);
        let e = inspect(&m, &CAPS).unwrap_err();
        assert!(e.message.contains("fnhost_call_g"), "{}", e.message);
    }
}
