"""Rewriting a models.config as the rollout command does: one model's policy and labels
change, every other field and the comment lines heading the file stay."""

import pytest

from serving.tf_serving_config import parse_model_server_config, rewritten

TWO_MODELS = """\
# The models this server runs.
model_config_list {
  config {
    name: "other"  # not ours: stays as it is
    base_path: "/models/other"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 7 }
  }
  config {
    # Ours.
    name: "mnist"
    base_path: "/models/mnist"
    model_platform: "tensorflow"
    # The policy below is the one rollouts replace.
    model_version_policy {
      latest {
        num_versions: 1
      }
    }
    version_labels: { key: 'canary', value: 1 }
    version_labels { key: "stable" value: 1 }  # two labels, two styles
  }
}
"""


def test_rewriting_changes_the_policy_and_labels_of_one_model_only() -> None:
    text = rewritten(TWO_MODELS, "mnist", {1, 2}, {"stable": 1, "canary": 2})

    config = parse_model_server_config(text)
    other, mnist = config.model_config_list.config
    assert other == parse_model_server_config(TWO_MODELS).model_config_list.config[0]
    assert list(mnist.model_version_policy.specific.versions) == [1, 2]
    assert dict(mnist.version_labels) == {"stable": 1, "canary": 2}
    assert (mnist.name, mnist.base_path, mnist.model_platform) == (
        "mnist",
        "/models/mnist",
        "tensorflow",
    )
    assert text.startswith("# The models this server runs.\nmodel_config_list {\n")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            'model_config_list { config { name: "mnist" base_path: "/m" } }', id="one-line"
        ),
        pytest.param(
            'model_config_list {\n  config {\n    name: "mn" "ist"\n    base_path: "/m"\n  }\n}\n',
            id="adjacent-strings-no-policy",
        ),
        pytest.param(
            "model_config_list <\n  config <\n    name: 'mnist';\n    base_path: '/m#not-a-comment'"
            "\n    model_version_policy < all < > >\n  >\n>\n",
            id="angle-brackets-and-separators",
        ),
    ],
)
def test_rewriting_follows_any_text_format_layout(text: str) -> None:
    rewritten_text = rewritten(text, "mnist", {3}, {"stable": 3})

    (entry,) = parse_model_server_config(rewritten_text).model_config_list.config
    assert list(entry.model_version_policy.specific.versions) == [3]
    assert dict(entry.version_labels) == {"stable": 3}
    assert entry.base_path in ("/m", "/m#not-a-comment")


def test_rewriting_a_model_that_is_not_there_is_refused() -> None:
    with pytest.raises(ValueError, match="no model named 'digits'"):
        rewritten(TWO_MODELS, "digits", {1}, {})
