import CDNNL

#if canImport(Glibc)
    import Glibc
#endif

// oneDNN 2.6 plumbing: every handle lives in a final class that destroys it
// exactly once in `deinit` (a double destroy crashes inside libdnnl), and every
// call goes through `check`, which turns a failure into `EngineError.dnnl`.
//
// Thread safety, as oneDNN documents it and as we rely on it:
// - the engine and primitive descriptors are immutable after creation;
// - a primitive may be executed concurrently from several threads, each with
//   its own stream and its own memory objects. We create every primitive with
//   a *user* scratchpad and hand each execution a fresh scratchpad, so no two
//   executions ever share temporary storage (the library-managed scratchpad
//   would be shared between primitives unless oneDNN were built with
//   DNNL_ENABLE_CONCURRENT_EXEC);
// - streams are not thread-safe: one per execution (`DNNLStream` is not Sendable).

/// Throws `EngineError.dnnl` unless `status` is `dnnl_success`.
@inline(__always)
func check(_ status: dnnl_status_t, _ call: String) throws {
    if status != dnnl_success {
        throw EngineError.dnnl(status: Int(status.rawValue), call: call)
    }
}

// MARK: - Engine

/// The process-wide CPU engine, created on first use.
final class DNNLEngine: @unchecked Sendable {
    // @unchecked: the handle is immutable and oneDNN engines are safe to share
    // between threads (primitives and memories created on it from any thread).
    let handle: dnnl_engine_t

    private init() throws {
        keepFreedMemory()
        var e: dnnl_engine_t?
        try check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        guard let e else { throw EngineError.dnnl(status: -1, call: "dnnl_engine_create (null)") }
        handle = e
    }

    deinit { dnnl_engine_destroy(handle) }

    /// Swift initialises a static `let` lazily and exactly once, thread-safely.
    private static let shared: Result<DNNLEngine, EngineError> = {
        do { return .success(try DNNLEngine()) } catch let e as EngineError {
            return .failure(e)
        } catch { return .failure(.dnnl(status: -1, call: "dnnl_engine_create")) }
    }()

    static func cpu() throws -> DNNLEngine { try shared.get() }
}

/// Makes glibc keep freed memory for reuse instead of handing it back to the kernel.
///
/// By default glibc serves every allocation above the mmap threshold (at most
/// 32 MiB) with a fresh `mmap` and unmaps it on free. Every feature map here is
/// larger than that at batch > 1 (VGG16 block1 at batch 16: 205 MB), so every
/// layer's output, gradient and oneDNN temporary was a fresh mapping: a page
/// fault plus a kernel zero-fill per 4 KiB page on first touch. Measured on the
/// batch-16 ascent step: ~30% of the time in the kernel (clear_page_erms,
/// exc_page_fault), sys time 4.6 s → 1.8 s with this, and block1_conv1's
/// forward 124 ms → 32 ms (it writes a fresh 205 MB output).
///
/// With mmap off and trimming off, freed blocks go back to the heap and the
/// next layer reuses their already-mapped pages. The cost: the process keeps
/// its peak heap resident (a server's working set stays at its largest batch).
/// Process-wide; done once, when the oneDNN engine is created (before any
/// layer runs). `mallopt` lives in <malloc.h>, which the Glibc module does not
/// import, hence the lookup.
private func keepFreedMemory() {
    #if os(Linux)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        let mallopt = unsafeBitCast(sym, to: Mallopt.self)
        let M_TRIM_THRESHOLD: Int32 = -1
        let M_MMAP_MAX: Int32 = -4
        _ = mallopt(M_MMAP_MAX, 0)  // never mmap: big blocks come from (and return to) the heap
        _ = mallopt(M_TRIM_THRESHOLD, -1)  // (size_t)-1: never give the heap top back
    #endif
}

// MARK: - Memory descriptors

typealias MemoryDesc = dnnl_memory_desc_t

enum MD {
    /// A plain f32 descriptor with a format tag (`dnnl_nhwc`, `dnnl_nc`, `dnnl_a`
    /// or `dnnl_format_tag_any`). `dims` are in oneDNN's logical order (n, c, h, w).
    static func tag(_ dims: [Int], _ tag: dnnl_format_tag_t) throws -> MemoryDesc {
        var md = MemoryDesc()
        let d = dims.map { Int64($0) }
        try check(
            dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, dnnl_f32, tag),
            "dnnl_memory_desc_init_by_tag")
        return md
    }

    /// An f32 descriptor with explicit element strides (how Keras' kernel
    /// layouts are described without guessing tag names).
    static func strided(_ dims: [Int], strides: [Int]) throws -> MemoryDesc {
        var md = MemoryDesc()
        let d = dims.map { Int64($0) }
        let s = strides.map { Int64($0) }
        try check(
            dnnl_memory_desc_init_by_strides(&md, Int32(d.count), d, dnnl_f32, s),
            "dnnl_memory_desc_init_by_strides")
        return md
    }

    static func equal(_ a: MemoryDesc, _ b: MemoryDesc) -> Bool {
        var a = a
        var b = b
        return dnnl_memory_desc_equal(&a, &b) != 0
    }

    static func size(_ md: MemoryDesc) -> Int {
        var md = md
        return Int(dnnl_memory_desc_get_size(&md))
    }
}

// MARK: - Attributes, primitive descriptors, primitives

/// An element-wise function a primitive applies to its result before writing
/// it (a oneDNN eltwise post-op): `algorithm(x; alpha, beta)`.
struct EltwisePostOp: Sendable, Equatable {
    let algorithm: dnnl_alg_kind_t
    let alpha: Float
    let beta: Float
}

/// What a primitive does to its result before writing it, in order.
enum PostOp: Sendable, Equatable {
    case eltwise(EltwisePostOp)
    /// result + what the destination held before (a residual written there first).
    case sum
}

/// Primitive attributes: always a user-managed scratchpad (see the top of this
/// file), and the post-ops asked for.
private final class DNNLAttr {
    let handle: dnnl_primitive_attr_t

    init(postOps: [PostOp] = []) throws {
        var a: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&a), "dnnl_primitive_attr_create")
        guard let a else { throw EngineError.dnnl(status: -1, call: "dnnl_primitive_attr_create (null)") }
        handle = a
        try check(
            dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user),
            "dnnl_primitive_attr_set_scratchpad_mode")
        if postOps.isEmpty { return }
        var po: dnnl_post_ops_t?
        try check(dnnl_post_ops_create(&po), "dnnl_post_ops_create")
        guard let po else { throw EngineError.dnnl(status: -1, call: "dnnl_post_ops_create (null)") }
        // The attribute keeps its own copy of the list.
        defer { dnnl_post_ops_destroy(po) }
        for op in postOps {
            switch op {
            case .eltwise(let e):
                try check(dnnl_post_ops_append_eltwise(po, 1, e.algorithm, e.alpha, e.beta), "dnnl_post_ops_append_eltwise")
            case .sum:
                try check(dnnl_post_ops_append_sum(po, 1), "dnnl_post_ops_append_sum")
            }
        }
        try check(dnnl_primitive_attr_set_post_ops(a, po), "dnnl_primitive_attr_set_post_ops")
    }

    deinit { dnnl_primitive_attr_destroy(handle) }
}

final class DNNLPrimitiveDesc: @unchecked Sendable {
    // @unchecked: immutable after creation; only read (queried) afterwards.
    let handle: dnnl_primitive_desc_t

    /// Creates the primitive descriptor for an operation descriptor (`opDesc`
    /// points to a `dnnl_*_desc_t`); `hint` is the forward descriptor that
    /// backward primitives require; `postOps` run on the result, in order.
    init(opDesc: UnsafeRawPointer, hint: DNNLPrimitiveDesc? = nil, postOps: [PostOp] = [], call: String) throws {
        let engine = try DNNLEngine.cpu()
        let attr = try DNNLAttr(postOps: postOps)
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&pd, opDesc, attr.handle, engine.handle, hint?.handle), call)
        guard let pd else { throw EngineError.dnnl(status: -1, call: call + " (null)") }
        handle = pd
    }

    /// A reorder between two layouts of the same logical tensor.
    init(reorderFrom src: MemoryDesc, to dst: MemoryDesc) throws {
        let engine = try DNNLEngine.cpu()
        let attr = try DNNLAttr()
        var s = src
        var d = dst
        var pd: dnnl_primitive_desc_t?
        try check(
            dnnl_reorder_primitive_desc_create(&pd, &s, engine.handle, &d, engine.handle, attr.handle),
            "dnnl_reorder_primitive_desc_create")
        guard let pd else { throw EngineError.dnnl(status: -1, call: "dnnl_reorder_primitive_desc_create (null)") }
        handle = pd
    }

    deinit { dnnl_primitive_desc_destroy(handle) }

    /// oneDNN's name for the implementation it picked (`jit:avx512_core`, `ref:any`, ...).
    var implementation: String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(handle, dnnl_query_impl_info_str, 0, &name) == dnnl_success,
            let name
        else { return "" }
        return String(cString: name)
    }

    /// The memory descriptor the primitive chose for `what`
    /// (`dnnl_query_src_md`, `dnnl_query_weights_md`, ...).
    func md(_ what: dnnl_query_t, _ index: Int32 = 0) throws -> MemoryDesc {
        guard let p = dnnl_primitive_desc_query_md(handle, what, index) else {
            throw EngineError.dnnl(status: -1, call: "dnnl_primitive_desc_query_md(\(what.rawValue))")
        }
        return p.pointee
    }
}

/// An executable primitive. Each execution gets its own stream and scratchpad.
final class DNNLPrimitive: @unchecked Sendable {
    // @unchecked: the handle is immutable, and oneDNN primitives may be executed
    // concurrently (separate streams, separate scratchpads — see the top of this file).
    let handle: dnnl_primitive_t
    let desc: DNNLPrimitiveDesc
    private let scratchpad: MemoryDesc?

    init(_ desc: DNNLPrimitiveDesc) throws {
        var p: dnnl_primitive_t?
        try check(dnnl_primitive_create(&p, desc.handle), "dnnl_primitive_create")
        guard let p else { throw EngineError.dnnl(status: -1, call: "dnnl_primitive_create (null)") }
        handle = p
        self.desc = desc
        let sp = try desc.md(dnnl_query_scratchpad_md)
        scratchpad = MD.size(sp) > 0 ? sp : nil
    }

    /// A reorder primitive from `src` to `dst`.
    convenience init(reorderFrom src: MemoryDesc, to dst: MemoryDesc) throws {
        try self.init(DNNLPrimitiveDesc(reorderFrom: src, to: dst))
    }

    deinit { dnnl_primitive_destroy(handle) }

    /// Runs the primitive and waits for it.
    func execute(_ args: [(Int32, DNNLMemory)], on stream: DNNLStream) throws {
        var scratch: DNNLMemory?
        if let scratchpad { scratch = try DNNLMemory(scratchpad) }
        var list = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        if let scratch { list.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratch.handle)) }
        try check(dnnl_primitive_execute(handle, stream.handle, Int32(list.count), list), "dnnl_primitive_execute")
        try check(dnnl_stream_wait(stream.handle), "dnnl_stream_wait")
        withExtendedLifetime(args) {}
        withExtendedLifetime(scratch) {}
    }
}

// MARK: - Memory and streams

/// A memory object: either wrapping a caller's buffer (which must outlive it)
/// or owning a buffer oneDNN allocated.
final class DNNLMemory: @unchecked Sendable {
    // @unchecked: only instances that are written once (cached reordered
    // weights, biases) and then only read are ever shared between threads;
    // per-execution memories never leave the function that creates them.
    let handle: dnnl_memory_t
    let desc: MemoryDesc

    /// Memory over `pointer`, or a fresh oneDNN-allocated buffer when nil.
    init(_ md: MemoryDesc, pointer: UnsafeMutableRawPointer? = nil) throws {
        let engine = try DNNLEngine.cpu()
        var m: dnnl_memory_t?
        var d = md
        try check(
            dnnl_memory_create(&m, &d, engine.handle, pointer ?? convlens_dnnl_memory_allocate()),
            "dnnl_memory_create")
        guard let m else { throw EngineError.dnnl(status: -1, call: "dnnl_memory_create (null)") }
        handle = m
        desc = md
    }

    convenience init(_ md: MemoryDesc, reading buffer: UnsafeBufferPointer<Float>) throws {
        try self.init(md, pointer: UnsafeMutableRawPointer(mutating: buffer.baseAddress))
    }

    convenience init(_ md: MemoryDesc, writing buffer: UnsafeMutableBufferPointer<Float>) throws {
        try self.init(md, pointer: UnsafeMutableRawPointer(buffer.baseAddress))
    }

    deinit { dnnl_memory_destroy(handle) }

    func dataPointer() throws -> UnsafeMutableRawPointer {
        var p: UnsafeMutableRawPointer?
        try check(dnnl_memory_get_data_handle(handle, &p), "dnnl_memory_get_data_handle")
        guard let p else { throw EngineError.dnnl(status: -1, call: "dnnl_memory_get_data_handle (null)") }
        return p
    }

    /// A oneDNN-owned copy of `scalars` in the plain layout `md`, reordered to
    /// `target` (often a blocked layout a primitive chose). Used for weights,
    /// which are reordered once and cached.
    static func reordered(_ scalars: [Float], plain md: MemoryDesc, to target: MemoryDesc) throws -> DNNLMemory {
        let plain = try DNNLMemory(md)
        let p = try plain.dataPointer().bindMemory(to: Float.self, capacity: scalars.count)
        scalars.withUnsafeBufferPointer { src in
            p.update(from: src.baseAddress!, count: src.count)
        }
        if MD.equal(md, target) { return plain }
        let out = try DNNLMemory(target)
        let stream = try DNNLStream()
        try DNNLPrimitive(reorderFrom: md, to: target)
            .execute([(DNNL_ARG_FROM, plain), (DNNL_ARG_TO, out)], on: stream)
        return out
    }
}

/// A stream: one per execution, never shared between threads.
final class DNNLStream {
    let handle: dnnl_stream_t

    init() throws {
        let engine = try DNNLEngine.cpu()
        var s: dnnl_stream_t?
        try check(
            dnnl_stream_create(&s, engine.handle, UInt32(dnnl_stream_default_flags.rawValue)),
            "dnnl_stream_create")
        guard let s else { throw EngineError.dnnl(status: -1, call: "dnnl_stream_create (null)") }
        handle = s
    }

    deinit { dnnl_stream_destroy(handle) }
}

// MARK: - Layout bridges

/// Where a primitive's argument lives versus where the caller's NHWC (or plain)
/// buffer is: when they differ, a cached reorder primitive converts between them.
struct LayoutBridge: Sendable {
    let user: MemoryDesc
    let inner: MemoryDesc
    /// user → inner for inputs, inner → user for outputs; nil when the layouts match.
    let reorder: DNNLPrimitive?

    init(input user: MemoryDesc, primitive inner: MemoryDesc) throws {
        self.user = user
        self.inner = inner
        reorder = MD.equal(user, inner) ? nil : try DNNLPrimitive(reorderFrom: user, to: inner)
    }

    init(output user: MemoryDesc, primitive inner: MemoryDesc) throws {
        self.user = user
        self.inner = inner
        reorder = MD.equal(user, inner) ? nil : try DNNLPrimitive(reorderFrom: inner, to: user)
    }

    /// The memory to hand the primitive for an input read from `buffer`.
    func input(_ buffer: UnsafeBufferPointer<Float>, stream: DNNLStream) throws -> DNNLMemory {
        let userMem = try DNNLMemory(user, reading: buffer)
        guard let reorder else { return userMem }
        let innerMem = try DNNLMemory(inner)
        try reorder.execute([(DNNL_ARG_FROM, userMem), (DNNL_ARG_TO, innerMem)], on: stream)
        return innerMem
    }

    /// The memory the primitive should write, and a closure that delivers it into `buffer`.
    func output(_ buffer: UnsafeMutableBufferPointer<Float>, stream: DNNLStream) throws
        -> (memory: DNNLMemory, finish: () throws -> Void)
    {
        let userMem = try DNNLMemory(user, writing: buffer)
        guard let reorder else { return (userMem, {}) }
        let innerMem = try DNNLMemory(inner)
        return (
            innerMem,
            {
                try reorder.execute([(DNNL_ARG_FROM, innerMem), (DNNL_ARG_TO, userMem)], on: stream)
            }
        )
    }
}

// MARK: - Helpers shared by the layers

/// A new array of `count` floats that `body` fills completely (every element
/// written, e.g. by a oneDNN primitive or a loop over all indices). Skips the
/// zero fill a repeating-initialiser would spend a memory pass on. Float is a
/// trivial type, so even a `body` that throws halfway leaves nothing unsafe.
@inline(__always)
func uninitializedFloats(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
    try [Float](unsafeUninitializedCapacity: count) { buf, initialized in
        initialized = count
        try body(buf)
    }
}
