# The Flex Template launcher: Google's Python launcher base image with winnow installed. Dataflow
# starts it to build the job graph (`python -m pipeline.flex`), then runs the workers in the
# worker image (Dockerfile), named by the template's sdk_container_image parameter.
# Google publishes this base under moving tags: pin the digest you tested, e.g.
#   --build-arg LAUNCHER_BASE=gcr.io/dataflow-templates-base/python311-template-launcher-base@sha256:...
ARG LAUNCHER_BASE=gcr.io/dataflow-templates-base/python311-template-launcher-base
FROM ${LAUNCHER_BASE}

WORKDIR /template
COPY requirements.lock pyproject.toml README.md ./
COPY pipeline/ pipeline/
COPY model/ model/
COPY train/ train/
COPY jobs/ jobs/
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir -r requirements.lock \
 && pip install --no-cache-dir --no-deps .

ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/pipeline/flex.py
