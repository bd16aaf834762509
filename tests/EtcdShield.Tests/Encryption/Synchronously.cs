namespace EtcdShield.Tests.Encryption;

internal static class Synchronously
{
    /// <summary>Asserts the hot path completed without going asynchronous, and returns its result.</summary>
    public static T Completed<T>(ValueTask<T> pending)
    {
        Assert.True(pending.IsCompletedSuccessfully, "expected the operation to complete synchronously");
        return pending.Result;
    }
}
