using System.Text.Json.Nodes;
using SaeSharp.Server;

namespace SaeSharp.Tests.Server;

/// <summary>The live-work queue: its concurrency limit, its queue bound, its timeout and its progress reports.</summary>
public sealed class LiveWorkTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(2);

    private static async Task<LiveJob> Finished(LiveJob job)
    {
        while (!job.Finished) await job.WaitForChange(job.Version, Long, CancellationToken.None);
        return job;
    }

    [Fact]
    public async Task NoMoreThanTheLimitRunAtOnceAndEveryJobFinishes()
    {
        using var work = new LiveWork(concurrency: 2, queueLength: 10, Long, keep: 100);
        int running = 0, most = 0;
        var release = new SemaphoreSlim(0);
        var started = new SemaphoreSlim(0);
        var jobs = Enumerable.Range(0, 6).Select(i => work.Submit("test", 0, ctx =>
        {
            int now = Interlocked.Increment(ref running);
            lock (release) most = Math.Max(most, now);
            started.Release();
            release.Wait();
            Interlocked.Decrement(ref running);
            return JsonValue.Create(i);
        })).ToList();
        // Two start; the other four wait for a slot until one is released.
        Assert.True(await started.WaitAsync(Long));
        Assert.True(await started.WaitAsync(Long));
        Assert.False(await started.WaitAsync(TimeSpan.FromMilliseconds(200)));
        Assert.Equal(2, work.Running);
        Assert.Equal(4, jobs.Count(j => j.State == JobState.Queued));
        release.Release(6);
        foreach (var j in jobs) await Finished(j);
        Assert.Equal(2, most);
        Assert.Equal(Enumerable.Range(0, 6), jobs.Select(j => (int)j.Result!));
        Assert.All(jobs, j => Assert.Equal(JobState.Done, j.State));
        Assert.Same(jobs[3], work.Get(jobs[3].Id));
    }

    [Fact]
    public async Task QueuedJobsStartInTheOrderTheyWereSubmitted()
    {
        using var work = new LiveWork(concurrency: 1, queueLength: 20, Long, keep: 100);
        var gate = new ManualResetEventSlim();
        var a = work.Submit("test", 0, _ => { gate.Wait(); return JsonValue.Create(0); });
        var order = new List<int>();
        var queued = Enumerable.Range(1, 12).Select(i => work.Submit("test", 0, _ => { lock (order) order.Add(i); return JsonValue.Create(i); })).ToList();
        gate.Set();
        foreach (var j in queued) await Finished(j);
        Assert.Equal(Enumerable.Range(1, 12), order);
        Assert.Equal(JobState.Done, (await Finished(a)).State);
    }

    [Fact]
    public async Task AFullQueueRefusesTheNextJob()
    {
        using var work = new LiveWork(concurrency: 1, queueLength: 2, Long, keep: 100);
        var gate = new ManualResetEventSlim();
        var a = work.Submit("test", 0, _ => { gate.Wait(); return JsonValue.Create(1); });
        while (a.State != JobState.Running) await a.WaitForChange(a.Version, Long, CancellationToken.None);
        var b = work.Submit("test", 0, _ => JsonValue.Create(2));
        var c = work.Submit("test", 0, _ => JsonValue.Create(3));
        var e = Assert.Throws<QueueFullException>(() => work.Submit("test", 0, _ => JsonValue.Create(4)));
        Assert.Contains("queue is full (2 jobs waiting)", e.Message);
        gate.Set();
        Assert.Equal(3, (int)(await Finished(c)).Result!);
        Assert.Equal(JobState.Done, b.State);
        work.Submit("test", 0, _ => JsonValue.Create(5)); // room again
    }

    [Fact]
    public async Task AJobPastTheTimeoutIsStoppedAndReportedAndItsSlotFreesWhenItReturns()
    {
        using var work = new LiveWork(concurrency: 1, queueLength: 4, TimeSpan.FromMilliseconds(100), keep: 100);
        var stuck = work.Submit("test", 0, ctx =>
        {
            ctx.Cancel.WaitHandle.WaitOne(); // works until cancelled, like a steering run between generations
            ctx.Cancel.ThrowIfCancellationRequested();
            return JsonValue.Create(0);
        });
        await Finished(stuck);
        Assert.Equal(JobState.TimedOut, stuck.State);
        Assert.Contains("ran past job_timeout_seconds (0.1 s)", stuck.Error);
        var next = await Finished(work.Submit("test", 0, _ => JsonValue.Create(7)));
        Assert.Equal(7, (int)next.Result!);
        var failing = await Finished(work.Submit("test", 0, _ => throw new InvalidDataException("bad weights")));
        Assert.Equal(JobState.Failed, failing.State);
        Assert.Equal("bad weights", failing.Error);
    }

    [Fact]
    public async Task ProgressReportsReachAWaitingClient()
    {
        using var work = new LiveWork(concurrency: 1, queueLength: 4, Long, keep: 1);
        var step = new SemaphoreSlim(0);
        var reported = new SemaphoreSlim(0);
        var job = work.Submit("test", 0, ctx =>
        {
            step.Wait();
            ctx.Report(0.5, "half way");
            reported.Release();
            step.Wait();
            return JsonValue.Create("ok");
        });
        while (job.State != JobState.Running) await job.WaitForChange(job.Version, Long, CancellationToken.None);
        long seen = job.Version;
        var waiting = job.WaitForChange(seen, Long, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        step.Release();
        await waiting;
        Assert.True(await reported.WaitAsync(Long));
        Assert.Equal((0.5, "half way"), (job.Progress, job.Message));
        Assert.True(job.Version > seen);
        step.Release();
        await Finished(job);
        Assert.Equal((1.0, "done"), (job.Progress, job.Message));
        // Only the newest finished job is kept (keep: 1).
        var other = await Finished(work.Submit("test", 0, _ => JsonValue.Create(1)));
        Assert.True(SpinWait.SpinUntil(() => work.Get(job.Id) is null, Long)); // retired just after it finishes
        Assert.Same(other, work.Get(other.Id));
    }
}
