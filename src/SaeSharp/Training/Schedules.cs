namespace SaeSharp.Training;

/// <summary>Learning-rate schedule kinds (SAELens names).</summary>
public enum LrScheduler { Constant, Cosineannealing, Cosineannealingwarmrestarts }

/// <summary>
/// The learning rate at a step: linear warm-up from 0 over <see cref="WarmupSteps"/>, then the main schedule, then
/// (when <see cref="DecaySteps"/> &gt; 0) a linear decay to <see cref="LrEnd"/> over the last DecaySteps steps, as SAELens
/// composes them. Pure function of the step, so resuming a run needs only the step counter.
/// </summary>
public sealed record LrSchedule(
    double Lr,
    long TotalSteps,
    LrScheduler Kind = LrScheduler.Constant,
    long WarmupSteps = 0,
    long DecaySteps = 0,
    double LrEnd = 0,
    long RestartPeriod = 0)
{
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return Lr * (step + 1) / WarmupSteps;
        long decayStart = TotalSteps - DecaySteps;
        if (DecaySteps > 0 && step >= decayStart)
        {
            double frac = Math.Min(1.0, (double)(step - decayStart) / DecaySteps);
            return Lr + (LrEnd - Lr) * frac;
        }
        long mainStep = step - WarmupSteps;
        long mainLength = Math.Max(1, TotalSteps - WarmupSteps - DecaySteps);
        switch (Kind)
        {
            case LrScheduler.Constant: return Lr;
            case LrScheduler.Cosineannealing:
                return LrEnd + (Lr - LrEnd) * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, (double)mainStep / mainLength)));
            default:
                long period = RestartPeriod > 0 ? RestartPeriod : mainLength;
                double t = (double)(mainStep % period) / period;
                return LrEnd + (Lr - LrEnd) * 0.5 * (1 + Math.Cos(Math.PI * t));
        }
    }

    public void Validate()
    {
        if (!(Lr > 0)) throw new ArgumentException($"lr must be positive, got {Lr}");
        if (TotalSteps < 1) throw new ArgumentException($"total training steps must be at least 1, got {TotalSteps}");
        if (WarmupSteps < 0 || DecaySteps < 0 || WarmupSteps + DecaySteps > TotalSteps)
            throw new ArgumentException($"lr_warm_up_steps ({WarmupSteps}) + lr_decay_steps ({DecaySteps}) must be between 0 and the total steps ({TotalSteps})");
        if (LrEnd < 0) throw new ArgumentException($"lr_end must be non-negative, got {LrEnd}");
    }
}

/// <summary>A penalty coefficient (L1/L0) warmed up linearly from 0 over the first steps (SAELens l1_warm_up_steps).</summary>
public sealed record CoefficientWarmup(double Coefficient, long WarmupSteps)
{
    public double At(long step) => WarmupSteps > 0 && step < WarmupSteps ? Coefficient * (step + 1) / WarmupSteps : Coefficient;
}
