using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace SaeSharp.Server;

/// <summary>Where a live job is: waiting for a slot, running, or finished one of three ways.</summary>
public enum JobState { Queued, Running, Done, Failed, TimedOut }

/// <summary>What a running job sees: its cancellation (the timeout) and a way to report progress.</summary>
public sealed class JobContext(LiveJob job, CancellationToken cancel)
{
    public CancellationToken Cancel { get; } = cancel;

    /// <summary>Reports <paramref name="fraction"/> (0..1) done and what is happening.</summary>
    public void Report(double fraction, string message) => job.SetProgress(fraction, message);
}

/// <summary>
/// One live job (a text search or a steering comparison): its state, progress, and result or error, with a version
/// number that changes on every update so a client can wait for the next one.
/// </summary>
public sealed class LiveJob
{
    private readonly object _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal LiveJob(string id, string kind, int storeId)
    {
        Id = id;
        Kind = kind;
        StoreId = storeId;
        Message = "queued";
    }

    public string Id { get; }
    public string Kind { get; }
    public int StoreId { get; }
    public JobState State { get; private set; }
    public double Progress { get; private set; }
    public string Message { get; private set; }
    public JsonNode? Result { get; private set; }
    public string? Error { get; private set; }
    public long Version { get; private set; }
    public DateTime Created { get; } = DateTime.UtcNow;
    public bool Finished => State is JobState.Done or JobState.Failed or JobState.TimedOut;

    internal void SetProgress(double fraction, string message) =>
        Update(() => { Progress = Math.Clamp(fraction, 0, 1); Message = message; });

    internal void Start() => Update(() => { State = JobState.Running; Message = "running"; });

    /// <summary>Finishes the job once; later calls (the work ending after a timeout) change nothing.</summary>
    internal bool Finish(JobState state, JsonNode? result, string? error) => Update(() =>
    {
        State = state;
        Result = result;
        Error = error;
        if (state == JobState.Done) Progress = 1;
        Message = state switch { JobState.Done => "done", JobState.TimedOut => "timed out", _ => "failed" };
    });

    private bool Update(Action change)
    {
        TaskCompletionSource old;
        lock (_gate)
        {
            if (Finished) return false;
            change();
            Version++;
            old = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        old.SetResult();
        return true;
    }

    /// <summary>Waits until the job's version passes <paramref name="seen"/> or it finishes, at most <paramref name="timeout"/>.</summary>
    public async Task WaitForChange(long seen, TimeSpan timeout, CancellationToken cancel)
    {
        Task changed;
        lock (_gate)
        {
            if (Version > seen || Finished) return;
            changed = _changed.Task;
        }
        try { await changed.WaitAsync(timeout, cancel); }
        catch (TimeoutException) { }
    }
}

/// <summary>
/// The queue of live model work: at most <c>concurrency</c> jobs run at once, at most <c>queueLength</c> wait, each
/// running job is cancelled after <c>timeout</c> (reported as timed out at once; its slot frees when the work returns,
/// so the limit holds even for work that only stops at its next check), and the last <c>keep</c> finished jobs stay
/// readable by id.
/// </summary>
public sealed class LiveWork : IDisposable
{
    private readonly SemaphoreSlim _slots;
    private readonly int _queueLength, _keep;
    private readonly TimeSpan _timeout;
    private readonly ConcurrentDictionary<string, LiveJob> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<LiveJob> _finished = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _waiting, _running;

    public LiveWork(int concurrency, int queueLength, TimeSpan timeout, int keep)
    {
        if (concurrency < 1) throw new ArgumentOutOfRangeException(nameof(concurrency), "at least one job must be able to run");
        _slots = new SemaphoreSlim(concurrency, concurrency);
        _queueLength = queueLength;
        _timeout = timeout;
        _keep = keep;
        Concurrency = concurrency;
    }

    public int Concurrency { get; }
    public TimeSpan Timeout => _timeout;
    /// <summary>Jobs waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);
    /// <summary>Jobs holding a slot.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Queues <paramref name="work"/>; throws <see cref="QueueFullException"/> when the queue is full.</summary>
    public LiveJob Submit(string kind, int storeId, Func<JobContext, JsonNode> work)
    {
        if (Interlocked.Increment(ref _waiting) > _queueLength)
        {
            Interlocked.Decrement(ref _waiting);
            throw new QueueFullException($"the live-work queue is full ({_queueLength} jobs waiting); try again shortly");
        }
        var job = new LiveJob(Guid.NewGuid().ToString("N"), kind, storeId);
        _jobs[job.Id] = job;
        // The slot is asked for here, on the submitting thread: the semaphore's async waiters are served in the order
        // they asked, so jobs start in submission order (from a pool task, two jobs could swap places).
        var slot = _slots.WaitAsync(_stopping.Token);
        _ = RunAsync(job, work, slot);
        return job;
    }

    public LiveJob? Get(string id) => _jobs.TryGetValue(id, out var j) ? j : null;

    private async Task RunAsync(LiveJob job, Func<JobContext, JsonNode> work, Task slotTask)
    {
        bool slot = false;
        try
        {
            await slotTask;
            slot = true;
        }
        catch (OperationCanceledException)
        {
            job.Finish(JobState.Failed, null, "the server is stopping");
        }
        finally { Interlocked.Decrement(ref _waiting); }
        if (!slot) { Retire(job); return; }
        Interlocked.Increment(ref _running);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        try
        {
            job.Start();
            var running = Task.Run(() => work(new JobContext(job, cancel.Token)));
            var first = await Task.WhenAny(running, Task.Delay(_timeout, _stopping.Token));
            if (first != running)
            {
                job.Finish(JobState.TimedOut, null, $"the job ran past job_timeout_seconds ({_timeout.TotalSeconds:G} s) and was stopped");
                cancel.Cancel();
            }
            try { job.Finish(JobState.Done, await running, null); }
            catch (OperationCanceledException) { job.Finish(JobState.TimedOut, null, "the job was cancelled"); }
            catch (Exception e) { job.Finish(JobState.Failed, null, e.Message); }
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _slots.Release();
            Retire(job);
        }
    }

    private void Retire(LiveJob job)
    {
        _finished.Enqueue(job);
        while (_finished.Count > _keep && _finished.TryDequeue(out var old)) _jobs.TryRemove(old.Id, out _);
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }
}

/// <summary>The live-work queue has no room: the request is refused (503) rather than left waiting.</summary>
public sealed class QueueFullException(string message) : Exception(message);
