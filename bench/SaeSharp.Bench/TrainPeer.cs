using System.Globalization;

namespace SaeSharp.Bench;

/// <summary>
/// `bench train --peer`: the same training steps in PyTorch (Debian's python3-torch, on the system OpenBLAS), in
/// <see cref="PythonPeer"/>'s environment. Each step is what a SAELens-style PyTorch trainer runs: the encoder as one
/// addmm, top-k with the decode through <c>embedding_bag</c> (sparse: only the k selected decoder rows), AuxK over the
/// dead latents the same way, autograd's backward, gradient-norm clipping and torch.optim.Adam. The script also
/// times one dense GEMM of the bench's shape in torch, so each side has its own GEMM unit from the same run.
/// Benchmarks only.
/// </summary>
public sealed class TrainPeer(PythonPeer python, string description)
{
    // argv: architecture (topk | standard), B, d_in, d_sae, k, every n-th latent dead (0: none), repeats, threads.
    // Prints the best step's seconds and the best of two B x d_in x d_sae GEMMs, or with B = 0 the torch and BLAS versions.
    private const string Script = """
        import ctypes, sys, time
        import torch
        import torch.nn.functional as F
        arch = sys.argv[1]
        B, d_in, d_sae, k, dead_every, reps, threads = (int(v) for v in sys.argv[2:9])
        torch.set_num_threads(threads)
        if B == 0:
            try:
                lib = ctypes.CDLL("libblas.so.3")
                lib.openblas_get_config.restype = ctypes.c_char_p
                blas = lib.openblas_get_config().decode()
            except (OSError, AttributeError):
                blas = "a BLAS that is not OpenBLAS"
            print("torch", torch.__version__, "on", blas)
            sys.exit(0)
        torch.manual_seed(1)
        x = torch.randn(B, d_in)
        w = torch.randn(d_sae, d_in)
        w /= w.norm(dim=1, keepdim=True) * 10
        W_dec = w.clone().requires_grad_()
        W_enc = w.t().contiguous().requires_grad_()
        b_enc = torch.zeros(d_sae, requires_grad=True)
        b_dec = torch.zeros(d_in, requires_grad=True)
        params = [W_enc, b_enc, W_dec, b_dec]
        opt = torch.optim.Adam(params, lr=1e-4)
        dead_idx = torch.arange(0, d_sae, dead_every) if dead_every > 0 else None
        k_aux = d_in // 2
        def step():
            opt.zero_grad(set_to_none=True)
            sae_in = x - b_dec
            pre = torch.addmm(b_enc, sae_in, W_enc)
            if arch == "topk":
                vals, idx = pre.topk(k, dim=-1, sorted=False)
                recon = F.embedding_bag(idx, W_dec, per_sample_weights=F.relu(vals), mode="sum") + b_dec
                loss = (recon - x).pow(2).sum(-1).mean()
                if dead_idx is not None:
                    n_dead = len(dead_idx)
                    av, ai = pre[:, dead_idx].topk(min(k_aux, n_dead), dim=-1, sorted=False)
                    residual = (x - recon).detach()
                    aux = F.embedding_bag(dead_idx[ai], W_dec, per_sample_weights=av, mode="sum")
                    loss = loss + min(n_dead / k_aux, 1.0) * (aux - residual).pow(2).sum(-1).mean()
            else:
                acts = F.relu(pre)
                recon = acts @ W_dec + b_dec
                loss = (recon - x).pow(2).sum(-1).mean() + 5.0 * (acts * W_dec.norm(dim=1)).sum(-1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        step()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t)
        a, b, c = torch.randn(B, d_in), torch.randn(d_in, d_sae), torch.empty(B, d_sae)
        torch.mm(a, b, out=c)
        gemm = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            torch.mm(a, b, out=c)
            gemm = min(gemm, time.perf_counter() - t)
        print(best, gemm)
        """;

    /// <summary>The peer's torch and BLAS, as it reports them.</summary>
    public string Description { get; } = description;

    /// <summary>The peer, or null (with the reason) when python3 with torch is not installed.</summary>
    public static TrainPeer? TryStart(int threads, out string why)
    {
        var python = PythonPeer.TryStart(threads, Script, ["topk", 0, 0, 0, 0, 0, 0, threads], "torch (apt-get install python3-torch)", out string description, out why);
        return python is null ? null : new TrainPeer(python, description);
    }

    /// <summary>Whether the peer has a step for this architecture (topk, and standard freshly initialised).</summary>
    public static bool Covers(string architecture) => architecture is "topk" or "standard";

    /// <summary>Seconds of the best of <paramref name="repeats"/> steps, and of the peer's best dense B x d_in x d_sae GEMM.</summary>
    public (double Step, double Gemm) Time(string architecture, int batch, int dIn, int dSae, int k, int deadEvery, int repeats)
    {
        var (code, text) = python.Run(Script, architecture, batch, dIn, dSae, k, deadEvery, repeats, python.Threads);
        if (code != 0) throw new InvalidOperationException($"training peer failed: {text.Trim()}");
        var parts = text.Trim().Split(' ');
        return (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
    }
}
