namespace SaeSharp.Tensors;

/// <summary>
/// Keeps big short-lived buffers (a training step's [batch, d_sae] intermediates, a forward's logits, a generator's
/// blocks) on memory the process already touched. Tensors of <see cref="Tensor.PinnedThreshold"/> floats or more live
/// on the pinned object heap, which the GC collects only in full collections, now and then, so each step's fresh buffers used to
/// land on new pages, and first-touching a page costs microseconds on virtual machines: 0.6 s per 256 MB buffer
/// here. A blocking collection after every <see cref="CollectEvery"/> bytes of big allocations frees the previous
/// step's buffers for reuse (the GC retains the memory; see RetainVMGarbageCollection). The collection itself is
/// cheap because it marks few objects, well under a millisecond in a training run.
/// </summary>
internal static class LargeBuffers
{
    public const long CollectEvery = 128L << 20;
    private static long _sinceCollect;

    public static void BeforeAllocate(long bytes)
    {
        if (Interlocked.Add(ref _sinceCollect, bytes) < CollectEvery) return;
        Interlocked.Exchange(ref _sinceCollect, 0);
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
    }
}
