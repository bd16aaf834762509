using EtcdShield.EndToEnd.Infrastructure;

namespace EtcdShield.EndToEnd.Deploy;

/// <summary>
/// deploy/publish.sh's output (one Native AOT executable), published once per test run into a fresh
/// directory of the checkout: the container image is built from it and <see cref="PublishedProgramTests"/> run it.
/// </summary>
internal static class PublishedProgram
{
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(15);
    private static readonly Lazy<Task<string>> Output = new(PublishAsync);

    /// <summary>The repository the tests run from (the one holding deploy/).</summary>
    public static string Repository { get; } = FindRepository();

    /// <summary>The published directory; <c>EtcdShield</c> in it is the program.</summary>
    public static Task<string> DirectoryAsync() => Output.Value;

    private static async Task<string> PublishAsync()
    {
        var published = Path.Combine(Repository, "out", "container", "e2e-published");

        // A fresh directory: publish does not delete files an older publish left.
        if (Directory.Exists(published))
        {
            Directory.Delete(published, recursive: true);
        }

        (await ExternalCommand.RunAsync("/bin/bash", [Path.Combine(Repository, "deploy", "publish.sh"), published], timeout: PublishTimeout)).EnsureSuccess();
        return published;
    }

    private static string FindRepository()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "deploy", "publish.sh")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No checkout with deploy/publish.sh above {AppContext.BaseDirectory}.");
    }
}
