// bench/ort_bench.js: batch-1 latency of one ONNX model in ONNX Runtime
// (onnxruntime-node, CPU execution provider), timed like `evit-run --bench`:
// WARMUP untimed runs, then RUNS timed runs of one fixed pseudo-random
// image; median (mean of the middle two for an even count) and p99 (the
// ceil(0.99 RUNS)-th smallest), the definitions evit-run prints.
//
//   node bench/ort_bench.js ORT_DIR MODEL.onnx THREADS WARMUP RUNS C S
//
// prints one line:  ort threads=T median_ms=X p99_ms=Y mean_ms=Z runs=R
// Session options: intraOpNumThreads THREADS, interOpNumThreads 1,
// graphOptimizationLevel 'all', executionMode 'sequential' (the input is
// the model's first, float32 (1, C, S, S) holding pixel/255).
const [ortDir, model, threads, warmup, runs, c, s] = process.argv.slice(2);
const ort = require(ortDir);
const T = +threads, WU = +warmup, R = +runs, C = +c, S = +s;
(async () => {
    const sess = await ort.InferenceSession.create(model, {
        intraOpNumThreads: T, interOpNumThreads: 1, graphOptimizationLevel: 'all',
        executionMode: 'sequential'});
    const x = new Float32Array(C * S * S);
    let r = 12345;
    for (let i = 0; i < x.length; i++) { r = (r * 1103515245 + 12345) % 2147483648; x[i] = (r >> 16 & 255) / 255; }
    const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', x, [1, C, S, S])};
    for (let i = 0; i < WU; i++) await sess.run(feeds);
    const t = [];
    for (let i = 0; i < R; i++) {
        const t0 = process.hrtime.bigint();
        await sess.run(feeds);
        t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const mean = t.reduce((a, b) => a + b, 0) / R;
    t.sort((a, b) => a - b);
    const med = R % 2 ? t[R >> 1] : 0.5 * (t[R / 2 - 1] + t[R / 2]);
    console.log(`ort threads=${T} median_ms=${med.toFixed(4)} p99_ms=${t[Math.ceil(0.99 * R) - 1].toFixed(4)} mean_ms=${mean.toFixed(4)} runs=${R}`);
})().catch(e => { console.error('error: ' + model + ': ' + e.message); process.exit(1); });
