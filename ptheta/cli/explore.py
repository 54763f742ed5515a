"""`ptheta explore`: serve the interactive explorer on this machine and open it in a browser."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ptheta.explorer import server


@click.command("explore")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port of the page (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="PTHETA_EXPLORE_HOST",
    help="Address to listen on. The explorer has no login, so an address other than loopback "
    "(127.0.0.1, ::1, localhost) is refused unless typed here explicitly — not taken from "
    "$PTHETA_EXPLORE_HOST.",
)
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open a browser.")
@click.option(
    "--cache",
    "cache_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder where the models behind the views are fitted once and cached.  [default: "
    "$XDG_CACHE_HOME/ptheta/explorer, else ~/.cache/ptheta/explorer]",
)
@click.option(
    "--reports",
    "reports_dir",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder searched for `ptheta compare` reports (report.json) for the compare view.",
)
@click.option(
    "--spam-csv",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV with columns text,label (spam/ham or 1/0) for the discriminative-vs-generative "
    "view, instead of the built-in synthetic corpus.",
)
@click.option("--quick", is_flag=True, help="Tiny training budgets: fast, rough models.")
@click.pass_context
def command(
    ctx: click.Context,
    port: int,
    host: str,
    no_browser: bool,
    cache_dir: str | None,
    reports_dir: str,
    spam_csv: str | None,
    quick: bool,
) -> None:
    """Serve the explorer (a local web page backed by real fitted models) until Ctrl+C.

    Eleven views: the size of the space of binary images, structure (which connections a
    model keeps) on digits, p(x) as a surface on 2-D toys, naive Bayes against logistic
    regression on spam, a flow's layers keeping the density normalised, the probability
    budget (one unit of mass for autoregressive, latent-variable and flow models), surprise
    and entropy, a learned score field with Langevin chains, ODE paths from the Gaussian to
    the data, the latest `ptheta compare` report, and sequences of any length (an HMM's
    samples coloured by their hidden state path, next to a Markov chain and an LSTM).
    Models are fitted on first use and cached under --cache.

    \b
    Examples:
      ptheta explore                      # http://127.0.0.1:8765/ in your browser
      ptheta explore --no-browser --port 9000 --reports runs/compare
    """
    explicit = ctx.get_parameter_source("host") is ParameterSource.COMMANDLINE
    try:
        server.serve(
            host=host,
            port=port,
            open_browser=not no_browser,
            cache_dir=cache_dir,
            reports_dir=reports_dir,
            spam_csv=spam_csv,
            explicit_host=explicit,
            quick=quick,
            echo=click.echo,
        )
    except KeyboardInterrupt:  # Ctrl+C is how the explorer is stopped, not a failed run
        click.echo("ptheta explorer stopped (Ctrl+C).")
