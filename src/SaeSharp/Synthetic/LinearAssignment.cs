using System.Numerics.Tensors;
using SaeSharp.Tensors;

namespace SaeSharp.Synthetic;

/// <summary>
/// Writes rows <paramref name="rows"/>[0..count) (ascending) of a [rows, cols] cost matrix into the first count × cols
/// entries of <paramref name="dest"/>, row k of the block being matrix row rows[k] (row-major; the arrays may be longer).
/// </summary>
public delegate void CostRows(int[] rows, int count, double[] dest);

/// <summary>How <see cref="LinearAssignment.Solve(int, int, CostRows, Compute, AssignmentOptions?)"/> prunes and blocks.</summary>
public sealed record AssignmentOptions
{
    /// <summary>Cheapest columns of each row the first sparse problem starts from.</summary>
    public int CandidatesPerRow { get; init; } = 16;
    /// <summary>Columns added per checked row and round: those whose reduced cost is most negative (the dual check's violators).</summary>
    public int AddedPerRound { get; init; } = 16;
    /// <summary>Cost entries per block of rows (doubles), which bounds memory: 16M = 128 MB.</summary>
    public long BlockEntries { get; init; } = 1 << 24;
    /// <summary>Reduced costs above −Tolerance count as dual feasible (double rounding of the potentials).</summary>
    public double Tolerance { get; init; } = 1e-9;
}

/// <summary>
/// An optimal assignment: <see cref="Cols"/>[r] is the column of row <see cref="Rows"/>[r] (rows ascending) and
/// <see cref="Costs"/> its cost. <see cref="Rounds"/> sparse solves; <see cref="RowsRead"/> cost rows computed in all
/// (the first pass reads every row, each dual check only the rows it cannot clear from their bounds);
/// <see cref="CandidatePairs"/> pairs in the last sparse problem.
/// </summary>
public sealed record Assignment(int[] Rows, int[] Cols, double[] Costs, int Rounds, long RowsRead, long CandidatePairs)
{
    public double TotalCost => Costs.Sum();
}

/// <summary>
/// Rectangular linear sum assignment (scipy's <c>linear_sum_assignment</c> contract: min(rows, cols) pairs, each row
/// and column used at most once, total cost minimal) that scales to 16k × 16k without holding the matrix. The costs
/// arrive in blocks of rows from a callback, and the assignment is solved on a sparse set of candidate pairs (each
/// row's cheapest columns) by shortest augmenting paths with potentials (Jonker–Volgenant). Every row may also stay
/// unassigned at the matrix's largest cost D (a private extra column): filling those rows afterwards with free columns
/// costs at most D each, so this relaxed problem has the same optimum, and pairs of cost D never need to be candidates
/// (activation distances are mostly exactly D = 1).
/// <para>
/// Optimality over the whole matrix is then checked with the potentials u, v: every entry's reduced cost c − u − v
/// must be non-negative. A row whose cheapest non-candidate cost (its floor, known from the last full read of the row)
/// is at least u + max v passes without being read again; the other rows are recomputed, their negative entries join
/// the candidates and the sparse problem is solved again, until no entry is negative. The potentials are then a
/// feasible dual of the whole matrix with the assignment's objective, which proves it optimal for the whole matrix,
/// not only for the candidates.
/// </para>
/// </summary>
public static class LinearAssignment
{
    /// <summary>Minimum-cost matching of a row-major [rows, cols] matrix; (row, col) pairs sorted by row. <paramref name="maximize"/> maximises instead.</summary>
    public static (int[] Rows, int[] Cols) Solve(ReadOnlySpan<double> cost, int rows, int cols, Compute compute, bool maximize = false) =>
        SolveDense(cost.ToArray(), rows, cols, maximize, compute);

    /// <summary>The same for a float32 matrix (read in place, block by block: no second copy of a 16k × 16k matrix).</summary>
    public static (int[] Rows, int[] Cols) Solve(float[] cost, int rows, int cols, Compute compute, bool maximize = false) =>
        SolveDense(cost, rows, cols, maximize, compute);

    private static (int[] Rows, int[] Cols) SolveDense<T>(T[] cost, int rows, int cols, bool maximize, Compute compute) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        if (rows < 0 || cols < 0 || cost.Length != (long)rows * cols)
            throw new ArgumentException($"cost matrix has {cost.Length} elements, expected {rows}x{cols}");
        if (rows == 0 || cols == 0) return ([], []);
        double sign = maximize ? -1 : 1;
        bool transposed = rows > cols;
        CostRows fill = transposed
            ? (which, count, dest) =>
            {
                for (int r = 0; r < count; r++)
                    for (int c = 0; c < rows; c++) dest[r * rows + c] = sign * double.CreateTruncating(cost[(long)c * cols + which[r]]);
            }
            : (which, count, dest) =>
            {
                for (int r = 0; r < count; r++)
                {
                    var src = cost.AsSpan((int)((long)which[r] * cols), cols);
                    for (int j = 0; j < cols; j++) dest[r * cols + j] = sign * double.CreateTruncating(src[j]);
                }
            };
        var a = transposed ? Solve(cols, rows, fill, compute) : Solve(rows, cols, fill, compute);
        if (!transposed) return (a.Rows, a.Cols);
        var pairs = a.Rows.Select((r, k) => (R: a.Cols[k], C: r)).OrderBy(p => p.R).ToArray();
        return (pairs.Select(p => p.R).ToArray(), pairs.Select(p => p.C).ToArray());
    }

    /// <summary>
    /// The optimal assignment of every row of a [rows, cols] cost matrix (rows ≤ cols; transpose otherwise) whose rows
    /// <paramref name="fill"/> computes on demand, in blocks of <see cref="AssignmentOptions.BlockEntries"/> entries. The
    /// first pass reads every row; later dual checks read only the rows their bounds cannot clear. Costs must be finite.
    /// </summary>
    public static Assignment Solve(int rows, int cols, CostRows fill, Compute compute, AssignmentOptions? options = null)
    {
        var o = options ?? new AssignmentOptions();
        var c = compute;
        if (rows > cols) throw new ArgumentException($"assignment of {rows} rows to {cols} columns: the rows must be the smaller side (transpose the costs)");
        if (o.CandidatesPerRow < 1 || o.AddedPerRound < 1 || o.BlockEntries < 1) throw new ArgumentException("candidates, additions per round and block size must be positive");
        if (rows == 0) return new Assignment([], [], [], 0, 0, 0);
        var candidates = new Candidates(rows);
        var scan = new Scan(rows, cols, fill, o, c, candidates);
        double ceiling = scan.First(); // every row's cheapest columns, and the largest cost
        for (int round = 1; ; round++)
        {
            var sparse = new SparseProblem(rows, cols, candidates, ceiling);
            sparse.SolveAll();
            var check = sparse.Check();
            double vMax = double.NegativeInfinity;
            for (int j = 0; j < cols; j++) vMax = Math.Max(vMax, check.V[j]);
            // Rows whose floor clears u + max v need no read; filled rows are read for their columns' costs.
            var reread = Enumerable.Range(0, rows).Where(r => check.Filled[r] || scan.Floor[r] - check.U[r] - vMax < -o.Tolerance).ToArray();
            if (scan.Check(reread, check) == 0)
                return new Assignment(Enumerable.Range(0, rows).ToArray(), check.Column, check.Cost, round, scan.RowsRead, candidates.Count);
        }
    }

    /// <summary>
    /// A sparse solve to check against the whole matrix: the potentials u (rows) and v (columns), and each row's column
    /// with its cost. Rows left at the ceiling get the free columns in ascending order; their costs are read in the check.
    /// </summary>
    private sealed record DualCheck(double[] U, double[] V, int[] Column, double[] Cost, bool[] Filled);

    /// <summary>
    /// Reads cost rows in blocks: the first pass takes every row's <see cref="AssignmentOptions.CandidatesPerRow"/>
    /// cheapest columns as candidates; a check takes the given rows' <see cref="AssignmentOptions.AddedPerRound"/> most
    /// negative reduced costs c − u − v. Both keep each row's floor: its cheapest cost outside the candidates.
    /// </summary>
    private sealed class Scan(int rows, int cols, CostRows fill, AssignmentOptions o, Compute compute, Candidates candidates)
    {
        private readonly int _blockRows = (int)Math.Clamp(o.BlockEntries / cols, 1, rows);
        private double[]? _block;
        public double[] Floor { get; } = new double[rows];
        public long RowsRead { get; private set; }

        /// <summary>The smallest and largest costs, from the first pass.</summary>
        public double Lo { get; private set; }
        public double Hi { get; private set; }

        /// <summary>The first pass over every row; returns the largest cost.</summary>
        public double First()
        {
            (Lo, Hi) = Read(Enumerable.Range(0, rows).ToArray(), null).Range;
            return Hi;
        }

        /// <summary>The dual check of <paramref name="which"/>; returns how many candidates it added.</summary>
        public long Check(int[] which, DualCheck check) => Read(which, check).Added;

        private ((double Lo, double Hi) Range, long Added) Read(int[] which, DualCheck? check)
        {
            double margin = (Hi - Lo) / 64;
            _block ??= new double[(long)_blockRows * cols];
            var block = _block;
            double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
            long added = 0;
            int k = check is null ? o.CandidatesPerRow : o.AddedPerRound;
            var rowsOf = new int[_blockRows];
            for (int first = 0; first < which.Length; first += _blockRows)
            {
                int count = Math.Min(_blockRows, which.Length - first);
                Array.Copy(which, first, rowsOf, 0, count);
                fill(rowsOf, count, block);
                RowsRead += count;
                int parts = Math.Max(1, Math.Min(compute.Threads, count));
                var partLo = new double[parts];
                var partHi = new double[parts];
                var partAdded = new long[parts];
                compute.For(parts, p =>
                {
                    int r0 = (int)((long)count * p / parts), r1 = (int)((long)count * (p + 1) / parts);
                    var best = new SmallestK(k);
                    var raise = new SmallestK(o.AddedPerRound * 4);
                    var known = new int[cols]; // row + 1 where the column is a candidate of that row
                    double pLo = double.PositiveInfinity, pHi = double.NegativeInfinity;
                    for (int r = r0; r < r1; r++)
                    {
                        int row = rowsOf[r];
                        var costs = new ReadOnlySpan<double>(block, r * cols, cols);
                        double min = TensorPrimitives.Min(costs), max = TensorPrimitives.Max(costs); // NaN propagates
                        if (!double.IsFinite(min) || !double.IsFinite(max))
                            throw new ArgumentException($"cost matrix row {row} contains NaN or infinite entries");
                        pLo = Math.Min(pLo, min);
                        pHi = Math.Max(pHi, max);
                        best.Clear();
                        candidates.Mark(row, known);
                        if (check is null)
                            for (int j = 0; j < cols; j++) best.Offer(costs[j], j);
                        else
                        {
                            double u = check.U[row];
                            var v = check.V;
                            for (int j = 0; j < cols; j++)
                            {
                                double reduced = costs[j] - u - v[j];
                                if (reduced < -o.Tolerance && known[j] != row + 1) best.Offer(reduced, j);
                            }
                            if (check.Filled[row]) check.Cost[row] = costs[check.Column[row]];
                        }
                        for (int e = 0; e < best.Count; e++)
                        {
                            int j = best.Column(e);
                            candidates.Add(row, j, costs[j]);
                            known[j] = row + 1;
                        }
                        partAdded[p] += best.Count;
                        if (check is not null)
                        {
                            // Raise the row's floor above u + margin with its cheapest remaining columns (not violators: the
                            // solution stays optimal), so the next rounds clear the row from its bound instead of reading it.
                            double below = Math.Min(check.U[row] + margin, Hi); // pairs at the ceiling D are never needed
                            raise.Clear();
                            for (int j = 0; j < cols; j++) if (known[j] != row + 1 && costs[j] < below) raise.Offer(costs[j], j);
                            for (int e = 0; e < raise.Count; e++)
                            {
                                int j = raise.Column(e);
                                candidates.Add(row, j, costs[j]);
                                known[j] = row + 1;
                            }
                        }
                        double floor = double.PositiveInfinity;
                        for (int j = 0; j < cols; j++) if (known[j] != row + 1 && costs[j] < floor) floor = costs[j];
                        Floor[row] = floor;
                    }
                    partLo[p] = pLo;
                    partHi[p] = pHi;
                });
                lo = Math.Min(lo, partLo.Min());
                hi = Math.Max(hi, partHi.Max());
                added += partAdded.Sum();
            }
            return ((lo, hi), added);
        }
    }

    /// <summary>The k smallest keys offered with their columns, kept sorted; ties keep the lower column (offered first).</summary>
    private sealed class SmallestK(int k)
    {
        private readonly double[] _key = new double[k];
        private readonly int[] _col = new int[k];
        public int Count { get; private set; }
        public int Column(int i) => _col[i];
        public void Clear() => Count = 0;

        public void Offer(double key, int col)
        {
            if (Count == _key.Length && !(key < _key[Count - 1])) return;
            int i = Count == _key.Length ? Count - 1 : Count++;
            for (; i > 0 && key < _key[i - 1]; i--) { _key[i] = _key[i - 1]; _col[i] = _col[i - 1]; }
            _key[i] = key; _col[i] = col;
        }
    }

    /// <summary>Each row's candidate columns and their costs (a row is only ever written by one thread at a time).</summary>
    private sealed class Candidates(int rows)
    {
        private readonly List<(int Col, double Cost)>[] _rows = Enumerable.Range(0, rows).Select(_ => new List<(int, double)>()).ToArray();
        public long Count => _rows.Sum(r => (long)r.Count);
        public List<(int Col, double Cost)> Of(int row) => _rows[row];
        public void Add(int row, int col, double cost) => _rows[row].Add((col, cost));
        public void Mark(int row, int[] known) { foreach (var (col, _) in _rows[row]) known[col] = row + 1; }
    }

    /// <summary>
    /// The relaxed assignment restricted to the candidate pairs below the ceiling D, each row with a private extra
    /// column of cost D (stay unassigned); solved by inserting rows one at a time along shortest augmenting paths
    /// (Dijkstra on reduced costs c − v, with early exit at the first free column). Column potentials only decrease
    /// from 0 and free columns keep 0: the duals of a rectangular assignment. A row's extra column, once taken, is never
    /// reached again (only its own row leads to it), so its potential stays 0 and such a row's u is D.
    /// </summary>
    private sealed class SparseProblem
    {
        private readonly int _rows, _cols;
        private readonly int[] _start;
        private readonly int[] _col;
        private readonly double[] _cost;
        private readonly double[] _v;
        private readonly int[] _colRow, _rowCol;
        private readonly double[] _rowCost;
        private readonly double[] _dist;
        private readonly int[] _pred;
        private readonly double[] _predCost;
        private readonly bool[] _scanned;

        public SparseProblem(int rows, int cols, Candidates candidates, double ceiling)
        {
            _rows = rows; _cols = cols;
            _start = new int[rows + 1];
            for (int r = 0; r < rows; r++) _start[r + 1] = _start[r] + candidates.Of(r).Count(p => p.Cost < ceiling) + 1;
            _col = new int[_start[rows]];
            _cost = new double[_start[rows]];
            for (int r = 0; r < rows; r++)
            {
                int e = _start[r];
                foreach (var (col, cost) in candidates.Of(r))
                    if (cost < ceiling) { _col[e] = col; _cost[e++] = cost; }
                _col[e] = cols + r; _cost[e] = ceiling;
            }
            int all = cols + rows;
            _v = new double[all];
            _colRow = new int[all];
            Array.Fill(_colRow, -1);
            _rowCol = new int[rows];
            _rowCost = new double[rows];
            _dist = new double[all];
            Array.Fill(_dist, double.PositiveInfinity);
            _pred = new int[all];
            _predCost = new double[all];
            _scanned = new bool[all];
        }

        public void SolveAll()
        {
            var heap = new PriorityQueue<int, double>();
            var touched = new List<int>();
            var scanned = new List<int>();
            for (int s = 0; s < _rows; s++) Augment(s, heap, touched, scanned);
        }

        private void Augment(int s, PriorityQueue<int, double> heap, List<int> touched, List<int> scanned)
        {
            heap.Clear(); touched.Clear(); scanned.Clear();
            Relax(s, 0, heap, touched);
            int sink = -1;
            double end = 0;
            while (heap.TryDequeue(out int j, out double d))
            {
                if (_scanned[j] || d > _dist[j]) continue;
                if (_colRow[j] < 0) { sink = j; end = d; break; }
                _scanned[j] = true;
                scanned.Add(j);
                int i = _colRow[j];
                // u_i = c(i, j) − v_j makes the matched edge's reduced cost 0; paths continue from there.
                Relax(i, d - (_rowCost[i] - _v[j]), heap, touched);
            }
            if (sink < 0) throw new InvalidOperationException("assignment: no augmenting path (a row has no columns)");
            foreach (int j in scanned) _v[j] += _dist[j] - end;
            for (int j = sink; ;)
            {
                int i = _pred[j];
                int next = i == s ? -1 : _rowCol[i];
                _colRow[j] = i;
                _rowCol[i] = j;
                _rowCost[i] = _predCost[j];
                if (next < 0) break;
                j = next;
            }
            foreach (int j in touched) { _dist[j] = double.PositiveInfinity; _scanned[j] = false; }
        }

        private void Relax(int i, double baseDist, PriorityQueue<int, double> heap, List<int> touched)
        {
            for (int e = _start[i]; e < _start[i + 1]; e++)
            {
                int k = _col[e];
                if (_scanned[k]) continue;
                double nd = baseDist + _cost[e] - _v[k];
                if (nd >= _dist[k]) continue;
                if (double.IsPositiveInfinity(_dist[k])) touched.Add(k);
                _dist[k] = nd;
                _pred[k] = i;
                _predCost[k] = _cost[e];
                heap.Enqueue(k, nd);
            }
        }

        /// <summary>Potentials and the full assignment: rows on their extra column take the free real columns in ascending order.</summary>
        public DualCheck Check()
        {
            var u = new double[_rows];
            var column = new int[_rows];
            var cost = new double[_rows];
            var filled = new bool[_rows];
            int free = 0;
            for (int r = 0; r < _rows; r++)
            {
                u[r] = _rowCost[r] - _v[_rowCol[r]];
                if (_rowCol[r] < _cols) { column[r] = _rowCol[r]; cost[r] = _rowCost[r]; continue; }
                while (_colRow[free] >= 0) free++;
                column[r] = free++;
                filled[r] = true;
            }
            return new DualCheck(u, _v, column, cost, filled);
        }
    }
}
